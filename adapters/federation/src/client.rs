//! The broker's adapter for members that speak `/federation/v1`.
//!
//! Every call carries the member's bearer token, the call's `Idempotency-Key`, its
//! `traceparent` and a timeout equal to the time left before the call's deadline. Answers
//! are untrusted: bodies are capped at 1 MiB and parsed into the protocol's types; anything
//! else is a `bad_response`. HTTP statuses map to the broker's error kinds once, here.

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberAdapter, MemberResource, ResourceRef,
    ResourceSpec, Retry,
};
use alliance_adapter_http::{AllowedDestinations, MemberHttp, MAX_BODY};
use alliance_core::{ResourceType, TenantId};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::protocol::{Capabilities, CreateResource, Resource, ResourceList, PREFIX};

/// Largest statement the broker reads from a member.
const MAX_STATEMENT: usize = 256 * 1024 * 1024;

/// `adapter = { kind = "federation", endpoint = "...", token_env = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Base URL of the member, e.g. `http://127.0.0.1:8701`.
    pub endpoint: String,
    /// Environment variable holding the member's bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
}

/// A member reached over the federation protocol.
pub struct FederationAdapter {
    member: String,
    endpoint: String,
    token: Option<String>,
    http: MemberHttp,
    /// What the member advertised in its capabilities, refreshed by every health check.
    offered: std::sync::RwLock<alliance_adapter_api::Capabilities>,
}

impl std::fmt::Debug for FederationAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never printed.
        f.debug_struct("FederationAdapter")
            .field("member", &self.member)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl FederationAdapter {
    /// An adapter for `endpoint` with an optional bearer token.
    pub fn new(
        member: impl Into<String>,
        endpoint: impl Into<String>,
        token: Option<String>,
    ) -> Result<Self, String> {
        let member = member.into();
        let http = MemberHttp::new(&member)?;
        Ok(Self::with_client(member, endpoint, token, http))
    }

    /// An adapter on a given client (e.g. one restricted to the allowed member networks).
    pub fn with_client(
        member: impl Into<String>,
        endpoint: impl Into<String>,
        token: Option<String>,
        http: MemberHttp,
    ) -> Self {
        Self {
            member: member.into(),
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            token,
            http,
            offered: std::sync::RwLock::default(),
        }
    }

    /// An adapter for a member that joined by application: every connection is checked
    /// against `allowed` (see [`AllowedDestinations`]).
    pub fn restricted(
        member: &str,
        endpoint: &str,
        token: Option<String>,
        allowed: AllowedDestinations,
    ) -> Result<Self, String> {
        let http = MemberHttp::restricted(member, allowed)?;
        Ok(Self::with_client(member, endpoint, token, http))
    }

    /// An adapter from config, reading the token from the named environment variable.
    pub fn from_config(
        member: &str,
        config: &FederationConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let token = match &config.token_env {
            Some(name) => Some(env(name).ok_or_else(|| {
                format!("member {member}: environment variable {name} (token_env) is not set")
            })?),
            None => None,
        };
        Self::new(member, &config.endpoint, token)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        retry: Retry,
    ) -> Result<Option<(StatusCode, T)>, AdapterError> {
        let url = format!("{}{PREFIX}{path}", self.endpoint);
        let mut request = self
            .http
            .request(method, &url)
            .header("idempotency-key", &ctx.idempotency_key);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = self.http.send(ctx, request, retry, MAX_BODY).await?;
        let status = answer.status;
        let retry_after = answer.retry_after();
        let bytes = answer.body;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let (kind, retry) = match status {
                StatusCode::TOO_MANY_REQUESTS => (ErrorKind::RateLimited, retry),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    (ErrorKind::AuthFailed, Retry::Never)
                }
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::INSUFFICIENT_STORAGE => {
                    (ErrorKind::OverQuota, Retry::Never)
                }
                s if s.is_server_error() => (ErrorKind::Unavailable, retry),
                _ => (ErrorKind::Invalid, Retry::Never),
            };
            return Err(AdapterError::from_member(
                kind,
                retry,
                retry_after,
                format!("member {} answered {status}: {detail}", self.member),
            ));
        }
        let parsed = serde_json::from_slice(&bytes).map_err(|e| {
            AdapterError::new(
                ErrorKind::BadResponse,
                ErrorSource::Member,
                retry,
                format!(
                    "member {} answered a body that is not the protocol's: {e}",
                    self.member
                ),
            )
        })?;
        Ok(Some((status, parsed)))
    }

    /// `GET /capabilities`; what it offers is kept for [`MemberAdapter::capabilities`].
    pub async fn capabilities(&self, ctx: &CallContext) -> Result<Capabilities, AdapterError> {
        let found = self
            .call::<Capabilities>(ctx, Method::GET, "/capabilities", None, Retry::Safe)
            .await?
            .map(|(_, c)| c);
        if let Some(c) = &found {
            *self
                .offered
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                c.capabilities.iter().copied().collect();
        }
        found.ok_or_else(|| {
            AdapterError::new(
                ErrorKind::BadResponse,
                ErrorSource::Member,
                Retry::Safe,
                "no capabilities document",
            )
        })
    }
}

/// A request body as JSON (the protocol's types always serialize).
fn json_of(body: &impl serde::Serialize) -> Result<serde_json::Value, AdapterError> {
    serde_json::to_value(body).map_err(|e| {
        AdapterError::new(
            ErrorKind::Invalid,
            ErrorSource::Broker,
            Retry::Never,
            format!("cannot write the request: {e}"),
        )
    })
}

impl FederationAdapter {
    /// A call that answers a resource (1.1 routes); a 404 is the member not having it.
    async fn resource_call(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<MemberResource, AdapterError> {
        match self
            .call::<Resource>(ctx, method, path, body, Retry::WithIdempotencyKey)
            .await?
        {
            Some((_, r)) => to_member(r),
            None => Err(AdapterError::new(
                ErrorKind::NotFound,
                ErrorSource::Member,
                Retry::Never,
                format!(
                    "member {} does not have the resource (or lacks the route)",
                    self.member
                ),
            )),
        }
    }
}

fn to_member(r: Resource) -> Result<MemberResource, AdapterError> {
    let tenant = if r.tenant.is_empty() {
        None
    } else {
        TenantId::parse(&r.tenant).ok()
    };
    Ok(MemberResource {
        resource_type: r.resource_type,
        member_resource_id: r.id,
        broker_id: Some(r.broker_resource_id),
        tenant,
        status: r.status,
        detail: r.detail,
        observed: r.observed,
    })
}

fn path_id(id: &str) -> Result<&str, AdapterError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AdapterError::new(
            ErrorKind::Invalid,
            ErrorSource::Broker,
            Retry::Never,
            format!("`{id}` is not a resource id"),
        ));
    }
    Ok(id)
}

#[async_trait::async_trait]
impl MemberAdapter for FederationAdapter {
    fn kind(&self) -> &'static str {
        "federation"
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        let body = CreateResource {
            resource_type: spec.resource_type,
            name: spec.name.clone(),
            tenant: spec.tenant.to_string(),
            jurisdiction: spec.jurisdiction.to_string(),
            data_class: spec.data_class.to_string(),
            size: spec.size.as_ref().map(ToString::to_string),
            image: spec.image.as_ref().map(ToString::to_string),
            size_gb: spec.size_gb,
            access: spec.access.clone(),
        };
        // PUT on the broker's id is idempotent by the protocol: a retry returns the first.
        let path = format!("/resources/{}", path_id(&spec.broker_id)?);
        let answer = self
            .call::<Resource>(
                ctx,
                Method::PUT,
                &path,
                Some(json_of(&body)?),
                Retry::WithIdempotencyKey,
            )
            .await?;
        let (_, resource) = answer.ok_or_else(|| {
            AdapterError::new(
                ErrorKind::BadResponse,
                ErrorSource::Member,
                Retry::WithIdempotencyKey,
                "create answered no resource",
            )
        })?;
        to_member(resource)
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let path = format!("/resources/{}", path_id(&resource.broker_id)?);
        match self
            .call::<Resource>(ctx, Method::GET, &path, None, Retry::Safe)
            .await?
        {
            Some((_, r)) => to_member(r).map(Some),
            None => Ok(None),
        }
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        let path = format!("/resources/{}", path_id(&resource.broker_id)?);
        self.call::<serde_json::Value>(ctx, Method::DELETE, &path, None, Retry::Safe)
            .await?;
        Ok(())
    }

    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..10_000 {
            let mut path = format!("/resources?resource_type={resource_type}");
            if let Some(t) = tenant {
                path.push_str(&format!("&tenant={t}"));
            }
            if let Some(t) = &token {
                path.push_str(&format!("&page_token={t}"));
            }
            let page = self
                .call::<ResourceList>(ctx, Method::GET, &path, None, Retry::Safe)
                .await?
                .map(|(_, p)| p)
                .unwrap_or(ResourceList {
                    items: Vec::new(),
                    next_page_token: None,
                });
            for r in page.items {
                out.push(to_member(r)?);
            }
            match page.next_page_token {
                Some(next)
                    if next
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    token = Some(next)
                }
                Some(_) => {
                    return Err(AdapterError::new(
                        ErrorKind::BadResponse,
                        ErrorSource::Member,
                        Retry::Safe,
                        "bad next_page_token",
                    ))
                }
                None => return Ok(out),
            }
        }
        Err(AdapterError::new(
            ErrorKind::BadResponse,
            ErrorSource::Member,
            Retry::Safe,
            "the member's list never ends",
        ))
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        self.capabilities(ctx).await.map(|_| ())
    }

    fn capabilities(&self) -> alliance_adapter_api::Capabilities {
        self.offered
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &alliance_adapter_api::InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        let path = format!("/resources/{}/actions", path_id(&instance.broker_id)?);
        self.resource_call(ctx, Method::POST, &path, Some(json_of(action)?))
            .await
    }

    async fn attach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        let path = format!("/resources/{}/attachment", path_id(&volume.broker_id)?);
        let body = crate::protocol::Attachment {
            instance: path_id(&instance.broker_id)?.to_owned(),
        };
        self.resource_call(ctx, Method::PUT, &path, Some(json_of(&body)?))
            .await
    }

    async fn detach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        let path = format!("/resources/{}/attachment", path_id(&volume.broker_id)?);
        self.resource_call(ctx, Method::DELETE, &path, None).await
    }

    async fn object_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &alliance_adapter_api::ObjectUrlRequest,
    ) -> Result<alliance_adapter_api::SignedUrl, AdapterError> {
        let path = format!("/resources/{}/urls", path_id(&bucket.broker_id)?);
        let body = crate::protocol::UrlRequest {
            method: request.method,
            object: request.object.clone(),
            expires_in: request.expires_in.as_secs(),
        };
        let answer = self
            .call::<crate::protocol::SignedUrlAnswer>(
                ctx,
                Method::POST,
                &path,
                Some(json_of(&body)?),
                Retry::Safe,
            )
            .await?
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::NotFound,
                    ErrorSource::Member,
                    Retry::Never,
                    "the member does not have the bucket",
                )
            })?
            .1;
        Ok(alliance_adapter_api::SignedUrl {
            url: answer.url,
            expires_at_ms: answer.expires_at.saturating_mul(1000),
        })
    }

    async fn statement(
        &self,
        ctx: &CallContext,
        period: &str,
    ) -> Result<Option<String>, AdapterError> {
        ctx.check_deadline()?;
        if period.len() != 7 || !period.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(AdapterError::invalid(format!("`{period}` is not a period")));
        }
        let url = format!("{}{PREFIX}/statements/{period}", self.endpoint);
        let mut request = self.http.request(Method::GET, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let answer = self
            .http
            .send(ctx, request, Retry::Safe, MAX_STATEMENT)
            .await?;
        let status = answer.status;
        let bytes = answer.body;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => String::from_utf8(bytes).map(Some).map_err(|_| {
                AdapterError::new(
                    ErrorKind::BadResponse,
                    ErrorSource::Member,
                    Retry::Safe,
                    "the statement is not UTF-8",
                )
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(AdapterError::new(
                ErrorKind::AuthFailed,
                ErrorSource::Member,
                Retry::Never,
                format!("member {} refused the broker's credentials", self.member),
            )),
            s if s.is_server_error() => Err(AdapterError::new(
                ErrorKind::Unavailable,
                ErrorSource::Member,
                Retry::Safe,
                format!("member {} answered {s}", self.member),
            )),
            s => Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Member,
                Retry::Never,
                format!("member {} answered {s}", self.member),
            )),
        }
    }
}
