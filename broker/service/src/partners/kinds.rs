//! The kinds of member a partner may apply as, each with its own adapter fields and
//! credentials: `federation` (an endpoint and a bearer token), `openstack` (Keystone's URL,
//! a region, and an application credential or a password) and `ec2` (an endpoint, a region
//! and an access key pair). One place validates them, names the URLs the SSRF guard must
//! check, and builds the restricted adapter for conformance and for the member itself.

use std::sync::Arc;

use alliance_adapter_api::{Mapping, MemberAdapter};
use alliance_adapter_ec2::{Ec2Adapter, Ec2Config, Signer};
use alliance_adapter_federation::FederationAdapter;
use alliance_adapter_http::AllowedDestinations;
use alliance_adapter_openstack::{OpenStackAdapter, OpenStackConfig};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::invalid;
use crate::error::ApiResult;

/// How the broker reaches the member. Which fields apply depends on `kind`; a field of
/// another kind is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterDescription {
    /// `federation`, `openstack` or `ec2`.
    pub kind: String,
    /// federation: the member's base URL; ec2: the EC2 endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// ec2: the S3 endpoint (the EC2 endpoint when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// openstack: Keystone's v3 URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// openstack: the catalogue region; ec2: the SigV4 region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// openstack: the catalogue interface (`public` by default, `internal`, `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// openstack: the network servers join (`none` for none; Nova's `auto` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// ec2: the availability zone of volumes (`<region>a` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// openstack: keep each tenant's resources in a project of its own in this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_project_domain: Option<String>,
}

/// Write-only credentials: sealed at rest with AES-256-GCM, never returned, never logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// federation: the bearer token the broker presents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// ec2: the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// ec2: the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// openstack: an application credential's id (with its secret)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential_id: Option<String>,
    /// ...and its secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential_secret: Option<String>,
    /// openstack: or a user name...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// ...its password...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// ...and the project, by name (in `project_domain_name`)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// ...or by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The user's domain (`Default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_domain_name: Option<String>,
    /// The project's domain (`Default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_domain_name: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Which fields are set, never their values.
        f.debug_struct("Credentials")
            .field("fields", &self.present())
            .finish()
    }
}

impl Credentials {
    fn fields(&self) -> [(&'static str, Option<&str>); 11] {
        [
            ("token", self.token.as_deref()),
            ("access_key_id", self.access_key_id.as_deref()),
            ("secret_access_key", self.secret_access_key.as_deref()),
            (
                "application_credential_id",
                self.application_credential_id.as_deref(),
            ),
            (
                "application_credential_secret",
                self.application_credential_secret.as_deref(),
            ),
            ("username", self.username.as_deref()),
            ("password", self.password.as_deref()),
            ("project_name", self.project_name.as_deref()),
            ("project_id", self.project_id.as_deref()),
            ("user_domain_name", self.user_domain_name.as_deref()),
            ("project_domain_name", self.project_domain_name.as_deref()),
        ]
    }

    fn present(&self) -> Vec<&'static str> {
        self.fields()
            .into_iter()
            .filter_map(|(name, v)| v.map(|_| name))
            .collect()
    }

    /// The OpenStack identity: an application credential, else a password.
    fn keystone(&self) -> Result<alliance_adapter_openstack::Credentials, String> {
        use alliance_adapter_openstack::{Domain, Project};
        if let (Some(id), Some(secret)) = (
            &self.application_credential_id,
            &self.application_credential_secret,
        ) {
            return Ok(
                alliance_adapter_openstack::Credentials::ApplicationCredential {
                    id: id.clone(),
                    secret: secret.clone(),
                },
            );
        }
        let (Some(username), Some(password)) = (&self.username, &self.password) else {
            return Err("an application credential or a user name and password".into());
        };
        let domain = |name: &Option<String>| match name {
            Some(n) => Domain::Name(n.clone()),
            None => Domain::Id("default".into()),
        };
        let project = match (&self.project_id, &self.project_name) {
            (Some(id), _) => Project::Id(id.clone()),
            (None, Some(name)) => Project::Name(name.clone(), domain(&self.project_domain_name)),
            (None, None) => return Err("a project (`project_name` or `project_id`)".into()),
        };
        Ok(alliance_adapter_openstack::Credentials::Password {
            username: username.clone(),
            password: password.clone(),
            user_domain: domain(&self.user_domain_name),
            project,
        })
    }
}

/// An adapter built for a partner: every connection restricted to the allowed networks.
pub(crate) enum PartnerAdapter {
    /// A federation member.
    Federation(FederationAdapter),
    /// An OpenStack member.
    OpenStack(OpenStackAdapter),
    /// An EC2-compatible member.
    Ec2(Ec2Adapter),
}

impl PartnerAdapter {
    /// The adapter behind the trait.
    pub(crate) fn into_dyn(self) -> Arc<dyn MemberAdapter> {
        match self {
            Self::Federation(a) => Arc::new(a),
            Self::OpenStack(a) => Arc::new(a),
            Self::Ec2(a) => Arc::new(a),
        }
    }
}

/// The credential fields each kind takes.
const FEDERATION_CREDENTIALS: &[&str] = &["token"];
const EC2_CREDENTIALS: &[&str] = &["access_key_id", "secret_access_key"];
const OPENSTACK_CREDENTIALS: &[&str] = &[
    "application_credential_id",
    "application_credential_secret",
    "username",
    "password",
    "project_name",
    "project_id",
    "user_domain_name",
    "project_domain_name",
];

impl AdapterDescription {
    fn adapter_fields(&self) -> [(&'static str, Option<&str>); 8] {
        [
            ("endpoint", self.endpoint.as_deref()),
            ("s3_endpoint", self.s3_endpoint.as_deref()),
            ("auth_url", self.auth_url.as_deref()),
            ("region", self.region.as_deref()),
            ("interface", self.interface.as_deref()),
            ("network", self.network.as_deref()),
            ("availability_zone", self.availability_zone.as_deref()),
            (
                "tenant_project_domain",
                self.tenant_project_domain.as_deref(),
            ),
        ]
    }

    /// The federation description of a member stored before kinds existed.
    pub(crate) fn federation(endpoint: &str) -> Self {
        Self {
            kind: "federation".into(),
            endpoint: Some(endpoint.to_owned()),
            s3_endpoint: None,
            auth_url: None,
            region: None,
            interface: None,
            network: None,
            availability_zone: None,
            tenant_project_domain: None,
        }
    }

    /// The URL the broker connects to first (the endpoint, or Keystone's URL).
    pub(crate) fn main_url(&self) -> &str {
        self.endpoint
            .as_deref()
            .or(self.auth_url.as_deref())
            .unwrap_or_default()
    }

    /// Every URL given, with its field, for the SSRF guard.
    pub(crate) fn urls(&self) -> Vec<(String, &str)> {
        [
            ("endpoint", &self.endpoint),
            ("s3_endpoint", &self.s3_endpoint),
            ("auth_url", &self.auth_url),
        ]
        .into_iter()
        .filter_map(|(field, url)| url.as_deref().map(|u| (format!("adapter.{field}"), u)))
        .collect()
    }

    /// Checks the fields and credentials of the kind: the required ones are there, none of
    /// another kind is, and the adapter's own config check passes. Each error names the
    /// field.
    pub(crate) fn validate(
        &self,
        credentials: Option<&Credentials>,
        offers_instances: bool,
        sizes_given: bool,
        images_given: bool,
    ) -> ApiResult<()> {
        let (adapter_fields, credential_fields, required): (&[&str], &[&str], &[&str]) =
            match self.kind.as_str() {
                "federation" => (&["endpoint"], FEDERATION_CREDENTIALS, &["endpoint"]),
                "openstack" => (
                    &[
                        "auth_url",
                        "region",
                        "interface",
                        "network",
                        "tenant_project_domain",
                    ],
                    OPENSTACK_CREDENTIALS,
                    &["auth_url", "region"],
                ),
                "ec2" => (
                    &["endpoint", "s3_endpoint", "region", "availability_zone"],
                    EC2_CREDENTIALS,
                    &["endpoint", "region"],
                ),
                other => {
                    return Err(invalid(
                        "adapter.kind",
                        format!("`{other}` is not federation, openstack or ec2"),
                    ))
                }
            };
        // A field of another kind first: it says the most about what went wrong.
        for (field, value) in self.adapter_fields() {
            if value.is_some() && !adapter_fields.contains(&field) {
                return Err(invalid(
                    &format!("adapter.{field}"),
                    format!("not a field of {} members", self.kind),
                ));
            }
        }
        for (field, value) in self.adapter_fields() {
            match value {
                Some(v) => alliance_core::check_text(v, 2048)
                    .map_err(|e| invalid(&format!("adapter.{field}"), e))?,
                None if required.contains(&field) => {
                    return Err(invalid(
                        &format!("adapter.{field}"),
                        format!("required for {} members", self.kind),
                    ))
                }
                None => {}
            }
        }
        let given = credentials.cloned().unwrap_or_default();
        for (field, value) in given.fields() {
            if let Some(v) = value {
                if !credential_fields.contains(&field) {
                    return Err(invalid(
                        &format!("credentials.{field}"),
                        format!("not a credential of {} members", self.kind),
                    ));
                }
                if v.is_empty() || v.len() > 4096 || v.chars().any(char::is_control) {
                    return Err(invalid(
                        &format!("credentials.{field}"),
                        "1 to 4096 characters, no control characters",
                    ));
                }
            }
        }
        match self.kind.as_str() {
            "openstack" => {
                let identity = given
                    .keystone()
                    .map_err(|e| invalid("credentials", format!("openstack members give {e}")))?;
                if self.tenant_project_domain.is_some()
                    && matches!(
                        identity,
                        alliance_adapter_openstack::Credentials::ApplicationCredential { .. }
                    )
                {
                    return Err(invalid(
                        "adapter.tenant_project_domain",
                        "an application credential is bound to one project; tenant projects need a user name and password",
                    ));
                }
                if let Some((key, problem)) = self.openstack_config().problems().into_iter().next()
                {
                    return Err(invalid(&format!("adapter.{key}"), problem));
                }
            }
            "ec2" => {
                if given.access_key_id.is_none() || given.secret_access_key.is_none() {
                    return Err(invalid(
                        "credentials",
                        "ec2 members give `access_key_id` and `secret_access_key`",
                    ));
                }
                if let Some((key, problem)) = self.ec2_config().problems().into_iter().next() {
                    return Err(invalid(&format!("adapter.{key}"), problem));
                }
            }
            _ => {}
        }
        if self.kind != "federation" && offers_instances {
            // Nova and EC2 have no capabilities document mapping the broker's names.
            for (field, given) in [("sizes", sizes_given), ("images", images_given)] {
                if !given {
                    return Err(invalid(
                        field,
                        format!(
                            "{} members offering instances map the broker's {field} to their own ids",
                            self.kind
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The openstack adapter config (validated fields; defaults elsewhere).
    pub(crate) fn openstack_config(&self) -> OpenStackConfig {
        OpenStackConfig {
            auth_url: self.auth_url.clone().unwrap_or_default(),
            region: self.region.clone().unwrap_or_default(),
            interface: self.interface.clone().unwrap_or_else(|| "public".into()),
            env_prefix: "OS_".into(),
            network: self.network.clone(),
            tenant_project_domain: self.tenant_project_domain.clone(),
            floating_network: None,
        }
    }

    /// The ec2 adapter config.
    pub(crate) fn ec2_config(&self) -> Ec2Config {
        let mut config = Ec2Config::new(
            self.endpoint.as_deref().unwrap_or_default(),
            self.region.as_deref().unwrap_or_default(),
        );
        config.s3_endpoint.clone_from(&self.s3_endpoint);
        config.availability_zone.clone_from(&self.availability_zone);
        config
    }

    /// The member's adapter, every connection kept inside `allowed`; with a wrong secret
    /// when `wrong_secret` is set (the conformance suite's refusal check).
    pub(crate) fn build(
        &self,
        member: &str,
        credentials: Option<&Credentials>,
        mapping: Mapping,
        allowed: &AllowedDestinations,
        wrong_secret: bool,
    ) -> Result<PartnerAdapter, String> {
        let given = credentials.cloned().unwrap_or_default();
        let wrong = |secret: &Option<String>, label: &str| {
            secret
                .as_ref()
                .map(|_| format!("alliance-conformance-wrong-{label}"))
        };
        match self.kind.as_str() {
            "openstack" => {
                let mut identity = given.keystone()?;
                if wrong_secret {
                    identity = identity.with_wrong_secret();
                }
                OpenStackAdapter::new(member, self.openstack_config(), identity, mapping)?
                    .restricted(allowed.clone())
                    .map(PartnerAdapter::OpenStack)
            }
            "ec2" => {
                let config = self.ec2_config();
                let secret = if wrong_secret {
                    wrong(&given.secret_access_key, "secret")
                } else {
                    given.secret_access_key.clone()
                };
                let signer = Signer::new(
                    given.access_key_id.clone().unwrap_or_default(),
                    secret.unwrap_or_default(),
                    None,
                    &config.region,
                );
                Ec2Adapter::new(member, config, signer, mapping)?
                    .restricted(allowed.clone())
                    .map(PartnerAdapter::Ec2)
            }
            _ => {
                let token = if wrong_secret {
                    wrong(&given.token, "token")
                } else {
                    given.token.clone()
                };
                FederationAdapter::restricted(member, self.main_url(), token, allowed.clone())
                    .map(PartnerAdapter::Federation)
            }
        }
    }
}
