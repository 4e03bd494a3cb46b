//! The member config (`adapter = { kind = "ec2", ... }`), its validation, and building an
//! [`Ec2Adapter`] from it (the credentials read from the environment variables it names).
//!
//! Invariant: an adapter only exists for a config without problems (`new` refuses any
//! other): http(s) endpoints, a region name fit for the SigV4 scope, and a bucket prefix
//! that keeps bucket names within S3's rules.

use alliance_adapter_http::{AllowedDestinations, AmbiguousCreates, MemberHttp};
use serde::{Deserialize, Serialize};

use crate::described::AMBIGUOUS_WINDOW;
use crate::{Ec2Adapter, Mapping, Signer};

/// `adapter = { kind = "ec2", endpoint = "...", region = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Config {
    /// The EC2 endpoint, e.g. `https://ec2.eu-west-3.amazonaws.com`.
    pub endpoint: String,
    /// The S3 endpoint (path-style requests); the EC2 endpoint when absent.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// The region in the SigV4 credential scope, and the buckets' location constraint.
    pub region: String,
    /// Availability zone for volumes (and instances); `<region>a` when absent.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Subnet for instances, when the member needs one.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Volume type for `CreateVolume`.
    #[serde(default = "default_volume_type")]
    pub volume_type: String,
    /// Prefix of bucket names (bucket names are global at some members).
    #[serde(default = "default_bucket_prefix")]
    pub bucket_prefix: String,
    /// Environment variable holding the access key id.
    #[serde(default = "default_access_key_env")]
    pub access_key_env: String,
    /// Environment variable holding the secret access key.
    #[serde(default = "default_secret_key_env")]
    pub secret_key_env: String,
    /// Environment variable holding a session token, when the credentials are temporary.
    #[serde(default)]
    pub session_token_env: Option<String>,
}

fn default_volume_type() -> String {
    "gp3".into()
}
fn default_bucket_prefix() -> String {
    "alliance-".into()
}
fn default_access_key_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_key_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

impl Ec2Config {
    /// A config with defaults for everything but the endpoint and region.
    pub fn new(endpoint: &str, region: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            s3_endpoint: None,
            region: region.to_owned(),
            availability_zone: None,
            subnet_id: None,
            volume_type: default_volume_type(),
            bucket_prefix: default_bucket_prefix(),
            access_key_env: default_access_key_env(),
            secret_key_env: default_secret_key_env(),
            session_token_env: None,
        }
    }

    /// Problems with the config, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, url) in [
            ("endpoint", Some(&self.endpoint)),
            ("s3_endpoint", self.s3_endpoint.as_ref()),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    out.push((key, format!("`{url}` is not an http(s) URL")));
                }
            }
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            out.push(("region", format!("`{}` is not a region name", self.region)));
        }
        let prefix_ok = self.bucket_prefix.len() <= 20
            && self
                .bucket_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !prefix_ok {
            out.push((
                "bucket_prefix",
                "up to 20 characters of a-z, 0-9 and -".into(),
            ));
        }
        out
    }
}

fn trim(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl Ec2Adapter {
    /// An adapter with explicit credentials.
    pub fn new(
        member: &str,
        config: Ec2Config,
        signer: Signer,
        mapping: Mapping,
    ) -> Result<Self, String> {
        if let Some((key, problem)) = config.problems().into_iter().next() {
            return Err(format!("member {member}: adapter.{key}: {problem}"));
        }
        Ok(Self {
            member: member.to_owned(),
            ec2_url: trim(&config.endpoint),
            s3_url: trim(config.s3_endpoint.as_deref().unwrap_or(&config.endpoint)),
            signer,
            mapping,
            http: MemberHttp::new(member)?,
            ambiguous: AmbiguousCreates::new(AMBIGUOUS_WINDOW),
            config,
        })
    }

    /// The same adapter with every connection kept inside `allowed` (members that joined by
    /// application; their literal-address endpoints were checked when they applied).
    pub fn restricted(mut self, allowed: AllowedDestinations) -> Result<Self, String> {
        self.http = MemberHttp::restricted(&self.member, allowed)?;
        Ok(self)
    }

    /// An adapter from config, reading the credentials from the environment variables it
    /// names.
    pub fn from_config(
        member: &str,
        config: &Ec2Config,
        mapping: Mapping,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let var = |name: &str, key: &str| {
            env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("member {member}: environment variable {name} ({key}) is not set")
            })
        };
        let access = var(&config.access_key_env, "access_key_env")?;
        let secret = var(&config.secret_key_env, "secret_key_env")?;
        let token = match &config.session_token_env {
            Some(name) => Some(var(name, "session_token_env")?),
            None => None,
        };
        let signer = Signer::new(access, secret, token, &config.region);
        Self::new(member, config.clone(), signer, mapping)
    }

    /// The availability zone for volumes: the configured one, else `<region>a`.
    pub(crate) fn zone(&self) -> String {
        self.config
            .availability_zone
            .clone()
            .unwrap_or_else(|| format!("{}a", self.config.region))
    }
}

#[cfg(test)]
impl Ec2Adapter {
    /// For tests: an adapter for `config` with made-up credentials and no mapping.
    pub(crate) fn for_test(config: Ec2Config) -> Self {
        let signer = Signer::new("a".into(), "s".into(), None, &config.region);
        Self::new("m", config, signer, Mapping::default()).expect("a valid test config")
    }

    /// For tests: an adapter for a member double serving `app` on a local port.
    pub(crate) async fn against(app: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self::for_test(Ec2Config::new(&url, "eu-west-3"))
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn config_problems_name_the_key() {
        let mut c = Ec2Config::new("ftp://x", "eu west");
        c.bucket_prefix = "UPPER".into();
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["endpoint", "region", "bucket_prefix"]);
        let missing = Ec2Adapter::from_config(
            "m",
            &Ec2Config::new("http://x", "r"),
            Mapping::default(),
            &|_| None,
        )
        .unwrap_err();
        assert!(missing.contains("AWS_ACCESS_KEY_ID"), "{missing}");
    }
}
