//! Keystone v3: password and application-credential authentication, the token cached with
//! moka until shortly before it expires, and endpoints chosen from the service catalogue
//! by region and interface.

use std::sync::Arc;
use std::time::Duration;

use alliance_adapter_api::{AdapterError, CallContext, ErrorKind, ErrorSource, Retry};
use alliance_adapter_http::{bad_response, MemberHttp, MAX_BODY};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

/// How the broker proves who it is to Keystone (from the standard `OS_*` variables).
#[derive(Clone)]
pub enum Credentials {
    /// `OS_USERNAME`/`OS_PASSWORD`, scoped to `OS_PROJECT_NAME` or `OS_PROJECT_ID`.
    Password {
        /// User name.
        username: String,
        /// Password.
        password: String,
        /// `OS_USER_DOMAIN_NAME` or `OS_USER_DOMAIN_ID`.
        user_domain: Domain,
        /// `OS_PROJECT_NAME` or `OS_PROJECT_ID`.
        project: Project,
    },
    /// `OS_APPLICATION_CREDENTIAL_ID`/`OS_APPLICATION_CREDENTIAL_SECRET` (already scoped).
    ApplicationCredential {
        /// Credential id.
        id: String,
        /// Credential secret.
        secret: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords and secrets are never printed.
        match self {
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::ApplicationCredential { id, .. } => f
                .debug_struct("ApplicationCredential")
                .field("id", id)
                .finish_non_exhaustive(),
        }
    }
}

/// A Keystone domain, by name or id.
#[derive(Debug, Clone)]
pub enum Domain {
    /// By name.
    Name(String),
    /// By id.
    Id(String),
}

/// A Keystone project, by name (in a domain) or id.
#[derive(Debug, Clone)]
pub enum Project {
    /// By name.
    Name(String, Domain),
    /// By id.
    Id(String),
}

fn domain_json(d: &Domain) -> serde_json::Value {
    match d {
        Domain::Name(n) => json!({ "name": n }),
        Domain::Id(i) => json!({ "id": i }),
    }
}

impl Credentials {
    /// Reads the credentials from `<prefix>APPLICATION_CREDENTIAL_ID`/`_SECRET` when set,
    /// else from `<prefix>USERNAME`, `PASSWORD`, `PROJECT_NAME`/`PROJECT_ID` and the domain
    /// variables (`Default` when absent), naming the missing variable otherwise.
    pub fn from_env(prefix: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| env(&format!("{prefix}{name}")).filter(|v| !v.is_empty());
        let need = |name: &str| {
            get(name).ok_or_else(|| format!("environment variable {prefix}{name} is not set"))
        };
        if let Some(id) = get("APPLICATION_CREDENTIAL_ID") {
            return Ok(Self::ApplicationCredential {
                id,
                secret: need("APPLICATION_CREDENTIAL_SECRET")?,
            });
        }
        let domain = |name: &str, id: &str| match (get(name), get(id)) {
            (_, Some(id)) => Domain::Id(id),
            (Some(name), None) => Domain::Name(name),
            (None, None) => Domain::Id("default".into()),
        };
        let project = match get("PROJECT_ID") {
            Some(id) => Project::Id(id),
            None => Project::Name(
                need("PROJECT_NAME").map_err(|e| format!("{e} (nor {prefix}PROJECT_ID)"))?,
                domain("PROJECT_DOMAIN_NAME", "PROJECT_DOMAIN_ID"),
            ),
        };
        Ok(Self::Password {
            username: need("USERNAME")
                .map_err(|e| format!("{e} (nor {prefix}APPLICATION_CREDENTIAL_ID)"))?,
            password: need("PASSWORD")?,
            user_domain: domain("USER_DOMAIN_NAME", "USER_DOMAIN_ID"),
            project,
        })
    }

    /// The same identity with a wrong secret (for the conformance suite's refusal check).
    pub fn with_wrong_secret(&self) -> Self {
        match self.clone() {
            Self::Password {
                username,
                user_domain,
                project,
                ..
            } => Self::Password {
                username,
                password: "alliance-conformance-wrong-password".into(),
                user_domain,
                project,
            },
            Self::ApplicationCredential { id, .. } => Self::ApplicationCredential {
                id,
                secret: "alliance-conformance-wrong-secret".into(),
            },
        }
    }

    /// The authentication request for `scope` (an application credential is always in its
    /// own project).
    fn body_in(&self, wanted: &Scope) -> serde_json::Value {
        match self {
            Self::Password {
                username,
                password,
                user_domain,
                project,
            } => {
                let scope = match (wanted, project) {
                    (Scope::Project(id), _) | (Scope::Home, Project::Id(id)) => {
                        json!({ "project": { "id": id } })
                    }
                    (Scope::Domain(name), _) => json!({ "domain": { "name": name } }),
                    (Scope::Home, Project::Name(name, domain)) => {
                        json!({ "project": { "name": name, "domain": domain_json(domain) } })
                    }
                };
                json!({ "auth": {
                    "identity": { "methods": ["password"], "password": { "user": {
                        "name": username, "domain": domain_json(user_domain), "password": password } } },
                    "scope": scope } })
            }
            Self::ApplicationCredential { id, secret } => json!({ "auth": { "identity": {
                "methods": ["application_credential"],
                "application_credential": { "id": id, "secret": secret } } } }),
        }
    }
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    token: Token,
}

#[derive(Debug, Deserialize)]
struct Token {
    expires_at: String,
    #[serde(default)]
    project: Option<IdOnly>,
    #[serde(default)]
    domain: Option<IdOnly>,
    #[serde(default)]
    user: Option<IdOnly>,
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The project of the member's credentials.
    Home,
    /// A tenant's project, by id.
    Project(String),
    /// A domain, by name (to manage the tenants' projects in it).
    Domain(String),
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    id: String,
}

/// One service of the catalogue.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    /// The service type (`compute`, `volumev3`, `object-store`, ...).
    #[serde(rename = "type")]
    pub service_type: String,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a catalogue entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// The region id.
    #[serde(default)]
    pub region_id: Option<String>,
    /// The region (older Keystones).
    #[serde(default)]
    pub region: Option<String>,
    /// The URL.
    pub url: String,
}

/// An authenticated session: the token, its project and catalogue.
pub struct Session {
    /// The `X-Auth-Token`.
    pub token: String,
    /// The scoped project.
    pub project_id: Option<String>,
    /// The scoped domain (domain-scoped tokens).
    pub domain_id: Option<String>,
    /// The authenticated user.
    pub user_id: Option<String>,
    /// The catalogue.
    pub catalog: Vec<CatalogEntry>,
    /// How long the cache may keep it.
    pub ttl: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The URL of the first service of `types` offered in `region` on `interface`.
    pub fn endpoint(&self, types: &[&str], region: &str, interface: &str) -> Option<String> {
        types.iter().find_map(|t| {
            self.catalog
                .iter()
                .filter(|e| e.service_type == *t)
                .flat_map(|e| e.endpoints.iter())
                .find(|ep| {
                    ep.interface == interface
                        && (ep.region_id.as_deref() == Some(region)
                            || ep.region.as_deref() == Some(region))
                })
                .map(|ep| ep.url.trim_end_matches('/').to_owned())
        })
    }

    /// Every `(service type, URL)` the catalogue offers in `region` on `interface`.
    pub fn endpoints_in<'a>(
        &'a self,
        region: &'a str,
        interface: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.catalog.iter().flat_map(move |e| {
            e.endpoints
                .iter()
                .filter(move |ep| {
                    ep.interface == interface
                        && (ep.region_id.as_deref() == Some(region)
                            || ep.region.as_deref() == Some(region))
                })
                .map(move |ep| (e.service_type.as_str(), ep.url.as_str()))
        })
    }

    /// The regions the catalogue offers on `interface`, in order.
    pub fn regions(&self, interface: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ep in self.catalog.iter().flat_map(|e| e.endpoints.iter()) {
            if ep.interface == interface {
                if let Some(r) = ep.region_id.clone().or_else(|| ep.region.clone()) {
                    if !out.contains(&r) {
                        out.push(r);
                    }
                }
            }
        }
        out
    }
}

/// Keystone for one member: authenticates, caches the session of each scope until shortly
/// before its token expires (moka; concurrent callers of a scope share one
/// authentication).
pub struct Keystone {
    auth_url: String,
    credentials: Credentials,
    cache: moka::future::Cache<Scope, Arc<Session>>,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("auth_url", &self.auth_url)
            .field("credentials", &self.credentials)
            .finish()
    }
}

struct UntilExpiry;

impl moka::Expiry<Scope, Arc<Session>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &Scope,
        session: &Arc<Session>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(session.ttl)
    }
}

/// How long before expiry a token is dropped and renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

impl Keystone {
    /// Keystone at `auth_url` (the v3 URL, e.g. `https://keystone.example/v3`).
    pub fn new(auth_url: &str, credentials: Credentials) -> Self {
        // `OS_AUTH_URL` is often given without its version (`https://keystone:5000`).
        let trimmed = auth_url.trim_end_matches('/');
        let auth_url = if trimmed.ends_with("/v3") {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/v3")
        };
        Self {
            auth_url,
            credentials,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    /// The credentials it authenticates with.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The v3 URL.
    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    /// A valid session in the credentials' own project, from the cache or a new
    /// authentication.
    pub async fn session(
        &self,
        http: &MemberHttp,
        ctx: &CallContext,
    ) -> Result<Arc<Session>, AdapterError> {
        self.session_in(http, ctx, &Scope::Home).await
    }

    /// A valid session scoped to `scope`.
    pub async fn session_in(
        &self,
        http: &MemberHttp,
        ctx: &CallContext,
        scope: &Scope,
    ) -> Result<Arc<Session>, AdapterError> {
        self.cache
            .try_get_with(scope.clone(), self.authenticate(http, ctx, scope))
            .await
            .map_err(|e| (*e).clone())
    }

    /// Drops the cached session of `scope` (after a 401 from a service).
    pub async fn forget(&self, scope: &Scope) {
        self.cache.invalidate(scope).await;
    }

    async fn authenticate(
        &self,
        http: &MemberHttp,
        ctx: &CallContext,
        scope: &Scope,
    ) -> Result<Arc<Session>, AdapterError> {
        let request = http
            .request(Method::POST, &format!("{}/auth/tokens", self.auth_url))
            .json(&self.credentials.body_in(scope));
        let answer = http.send(ctx, request, Retry::Safe, 4 * MAX_BODY).await?;
        if answer.status == reqwest::StatusCode::UNAUTHORIZED
            || answer.status == reqwest::StatusCode::FORBIDDEN
        {
            let what = match scope {
                Scope::Home => String::new(),
                Scope::Project(id) => format!(
                    " for the tenant project {id}: the broker's user needs a role on it (`member`, inherited from the tenant projects' domain, or granted by the broker when it holds `admin` there)"
                ),
                Scope::Domain(name) => format!(
                    " for the domain {name}: the broker's user needs the `manager` (or `admin`) role on it to keep the tenants' projects"
                ),
            };
            return Err(AdapterError::new(
                ErrorKind::AuthFailed,
                ErrorSource::Member,
                Retry::Never,
                format!("Keystone refused the credentials ({}){what}", answer.status),
            ));
        }
        if !answer.status.is_success() {
            return Err(crate::transport::service_error(
                http.member(),
                &answer,
                Retry::Safe,
            ));
        }
        let token = answer
            .header("x-subject-token")
            .map(str::to_owned)
            .ok_or_else(|| bad_response(Retry::Safe, "Keystone answered no X-Subject-Token"))?;
        let body: TokenBody = serde_json::from_slice(&answer.body)
            .map_err(|e| bad_response(Retry::Safe, format!("Keystone's token is not v3: {e}")))?;
        let expires = time::OffsetDateTime::parse(
            &body.token.expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| {
            bad_response(
                Retry::Safe,
                format!("Keystone's expires_at is not a time: {e}"),
            )
        })?;
        let left = expires - time::OffsetDateTime::now_utc();
        let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
        Ok(Arc::new(Session {
            token,
            project_id: body.token.project.map(|p| p.id),
            domain_id: body.token.domain.map(|d| d.id),
            user_id: body.token.user.map(|u| u.id),
            catalog: body.token.catalog,
            // Keep it until RENEW_BEFORE its expiry (at least a second, to share it).
            ttl: left
                .saturating_sub(RENEW_BEFORE)
                .max(Duration::from_secs(1)),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn credentials_come_from_the_standard_variables() {
        let app = Credentials::from_env(
            "OS_",
            &env(&[
                ("OS_APPLICATION_CREDENTIAL_ID", "i"),
                ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
            ]),
        )
        .unwrap();
        assert!(matches!(app, Credentials::ApplicationCredential { .. }));
        assert!(!format!("{app:?}").contains("\"s\""));
        let pw = Credentials::from_env(
            "BE_OS_",
            &env(&[
                ("BE_OS_USERNAME", "u"),
                ("BE_OS_PASSWORD", "hunter2"),
                ("BE_OS_PROJECT_NAME", "pr"),
            ]),
        )
        .unwrap();
        let body = pw.body_in(&Scope::Home).to_string();
        assert!(
            pw.body_in(&Scope::Domain("tenants".into()))["auth"]["scope"]["domain"]["name"]
                == "tenants"
        );
        assert!(body.contains("\"id\":\"default\""), "{body}");
        assert!(!format!("{pw:?}").contains("hunter2"));
        let missing =
            Credentials::from_env("OS_", &env(&[("OS_USERNAME", "u"), ("OS_PASSWORD", "p")]))
                .unwrap_err();
        assert!(missing.contains("OS_PROJECT_NAME"), "{missing}");
        let missing = Credentials::from_env("OS_", &env(&[])).unwrap_err();
        assert!(
            missing.contains("OS_PROJECT_NAME") || missing.contains("OS_USERNAME"),
            "{missing}"
        );
    }

    #[test]
    fn endpoints_are_chosen_by_region_and_interface() {
        let catalog: Vec<CatalogEntry> = serde_json::from_str(r#"[
            {"type":"compute","endpoints":[
                {"interface":"internal","region_id":"be","url":"http://internal/"},
                {"interface":"public","region_id":"de","url":"http://de/"},
                {"interface":"public","region_id":"be","url":"http://be/compute/"}]},
            {"type":"volumev3","endpoints":[{"interface":"public","region":"be","url":"http://vol"}]}]"#).unwrap();
        let s = Session {
            token: "t".into(),
            project_id: None,
            domain_id: None,
            user_id: None,
            catalog,
            ttl: Duration::from_secs(1),
        };
        assert_eq!(
            s.endpoint(&["compute"], "be", "public").as_deref(),
            Some("http://be/compute")
        );
        assert_eq!(
            s.endpoint(&["compute"], "be", "internal").as_deref(),
            Some("http://internal")
        );
        assert_eq!(
            s.endpoint(&["block-storage", "volumev3"], "be", "public")
                .as_deref(),
            Some("http://vol")
        );
        assert_eq!(s.endpoint(&["object-store"], "be", "public"), None);
        assert_eq!(s.regions("public"), ["de", "be"]);
    }
}
