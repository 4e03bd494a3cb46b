//! The member config (`adapter = { kind = "openstack", ... }`), its validation, and building
//! an [`OpenStackAdapter`] from it.
//!
//! Invariant: an adapter only exists for a config without problems (`new` refuses any
//! other), so every later call can rely on an http(s) Keystone URL, a region and one of the
//! three catalogue interfaces.

use std::time::Duration;

use alliance_adapter_http::{AllowedDestinations, AmbiguousCreates, MemberHttp};
use serde::{Deserialize, Serialize};

use crate::keystone::{Credentials, Keystone};
use crate::transport::PAGE_SIZE;
use crate::{Mapping, OpenStackAdapter};

/// `adapter = { kind = "openstack", auth_url = "...", region = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenStackConfig {
    /// Keystone's v3 URL, e.g. `https://keystone.example.be/v3`.
    pub auth_url: String,
    /// The region whose endpoints the broker uses.
    pub region: String,
    /// The catalogue interface: `public` (default), `internal` or `admin`.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Prefix of the credential variables (`OS_` → `OS_USERNAME`, `OS_PASSWORD`, ...).
    #[serde(default = "default_env_prefix")]
    pub env_prefix: String,
    /// The network servers are attached to; Nova's `auto` allocation when absent.
    #[serde(default)]
    pub network: Option<String>,
    /// The external network public addresses (floating IPs) come from; instances cannot
    /// ask for `public_ip` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_network: Option<String>,
    /// Keep each tenant's resources in a project of its own, named after the tenant, in
    /// this domain (created on the tenant's first resource); all in the credentials'
    /// project when absent. Needs password credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_project_domain: Option<String>,
}

/// The catalogue interface used when none is configured.
pub(crate) fn default_interface() -> String {
    "public".into()
}
fn default_env_prefix() -> String {
    "OS_".into()
}

impl OpenStackConfig {
    /// Problems with the config, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            out.push((
                "auth_url",
                format!("`{}` is not an http(s) URL", self.auth_url),
            ));
        }
        if self.region.is_empty() {
            out.push(("region", "must name a region of the catalogue".into()));
        }
        if self
            .tenant_project_domain
            .as_deref()
            .is_some_and(|d| d.trim().is_empty() || d.len() > 64)
        {
            out.push((
                "tenant_project_domain",
                "must name a Keystone domain (1 to 64 characters)".into(),
            ));
        }
        if !["public", "internal", "admin"].contains(&self.interface.as_str()) {
            out.push((
                "interface",
                format!("`{}` is not public, internal or admin", self.interface),
            ));
        }
        out
    }
}

impl OpenStackAdapter {
    /// An adapter with explicit credentials.
    pub fn new(
        member: &str,
        config: OpenStackConfig,
        credentials: Credentials,
        mapping: Mapping,
    ) -> Result<Self, String> {
        if let Some((key, problem)) = config.problems().into_iter().next() {
            return Err(format!("member {member}: adapter.{key}: {problem}"));
        }
        if config.tenant_project_domain.is_some()
            && matches!(credentials, Credentials::ApplicationCredential { .. })
        {
            return Err(format!("member {member}: adapter.tenant_project_domain: an application credential is bound to one project; tenant projects need password credentials"));
        }
        Ok(Self {
            member: member.to_owned(),
            keystone: Keystone::new(&config.auth_url, credentials),
            mapping,
            http: MemberHttp::new(member)?,
            config,
            page_size: PAGE_SIZE,
            ambiguous: AmbiguousCreates::new(Duration::from_secs(30)),
            allowed: None,
            projects: moka::future::Cache::builder().max_capacity(100_000).build(),
        })
    }

    /// The same adapter with every connection kept inside `allowed` (members that joined by
    /// application): Keystone's URL and every endpoint its catalogue names, whatever their
    /// host names resolve to later.
    pub fn restricted(mut self, allowed: AllowedDestinations) -> Result<Self, String> {
        self.http = MemberHttp::restricted(&self.member, allowed.clone())?;
        self.allowed = Some(allowed);
        Ok(self)
    }

    /// An adapter from config, with credentials from the `<env_prefix>*` variables.
    pub fn from_config(
        member: &str,
        config: &OpenStackConfig,
        mapping: Mapping,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let credentials = Credentials::from_env(&config.env_prefix, env)
            .map_err(|e| format!("member {member}: {e}"))?;
        Self::new(member, config.clone(), credentials, mapping)
    }

    /// The same member reached with a wrong secret (and the same restriction).
    pub fn with_wrong_secret(&self) -> Result<Self, String> {
        let wrong = Self::new(
            &self.member,
            self.config.clone(),
            self.keystone_credentials().with_wrong_secret(),
            self.mapping.clone(),
        )?;
        match &self.allowed {
            Some(allowed) => wrong.restricted(allowed.clone()),
            None => Ok(wrong),
        }
    }

    fn keystone_credentials(&self) -> &Credentials {
        self.keystone.credentials()
    }
}
