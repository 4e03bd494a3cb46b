//! The broker's adapter for OpenStack member clouds.
//!
//! Keystone v3 (password or application credentials from the standard `OS_*` variables; the
//! token cached until shortly before expiry and renewed once on a 401), endpoints from the
//! service catalogue by region and interface; Nova servers (flavour, image, network,
//! compute microversion 2.52 for server tags), Cinder v3 volumes, Swift containers.
//!
//! Idempotency. A Nova server carries the tag `alliance:<broker id>` and metadata with the
//! broker id and tenant; a Cinder volume carries that metadata; every create first searches
//! for an earlier attempt by it (Nova's `tags` filter, Cinder's `metadata` filter) and
//! returns it, so a create repeated after a crash or a timeout never makes a second one.
//! Swift containers are named after the broker id (`alliance-<id>`): PUT is idempotent.
#![forbid(unsafe_code)]

mod keystone;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberAdapter, MemberResource,
    MemberResourceStatus, ResourceRef, ResourceSpec, Retry,
};
use alliance_adapter_http::{bad_response, AmbiguousCreates, Answer, MemberHttp, MAX_BODY};
use alliance_core::{ResourceType, TenantId};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

pub use keystone::{Credentials, Keystone, Session};

/// The compute microversion the adapter speaks (2.52: tags at creation and as a filter).
pub const COMPUTE_MICROVERSION: &str = "2.52";
/// The block-storage microversion the adapter speaks.
pub const VOLUME_MICROVERSION: &str = "3.0";
/// Metadata key holding the broker's resource id.
pub const META_BROKER_ID: &str = "alliance_broker_id";
/// Metadata key holding the owning tenant.
pub const META_TENANT: &str = "alliance_tenant";
/// The tag every broker server carries.
pub const TAG_MARKER: &str = "alliance";

/// Items asked for per page of a Nova, Cinder or Swift list.
const PAGE_SIZE: usize = 1000;
/// Most items the adapter reads from one list (a bound on an untrusted member).
const MAX_LISTED: usize = 200_000;

const COMPUTE: &[&str] = &["compute"];
const VOLUME: &[&str] = &["block-storage", "volumev3"];
const OBJECT: &[&str] = &["object-store"];
const IMAGE: &[&str] = &["image"];
const NETWORK: &[&str] = &["network"];

/// `adapter = { kind = "openstack", auth_url = "...", region = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
}

fn default_interface() -> String {
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
        if !["public", "internal", "admin"].contains(&self.interface.as_str()) {
            out.push((
                "interface",
                format!("`{}` is not public, internal or admin", self.interface),
            ));
        }
        out
    }
}

/// How broker names map to the member's, and what it offers (shared by the adapters).
pub use alliance_adapter_api::Mapping;

/// A member reached over the OpenStack APIs.
pub struct OpenStackAdapter {
    member: String,
    config: OpenStackConfig,
    keystone: Keystone,
    mapping: Mapping,
    http: MemberHttp,
    page_size: usize,
    ambiguous: AmbiguousCreates,
}

impl std::fmt::Debug for OpenStackAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackAdapter")
            .field("member", &self.member)
            .field("keystone", &self.keystone)
            .field("region", &self.config.region)
            .finish_non_exhaustive()
    }
}

/// A failed service answer, classified (the Nova, Cinder and Swift API references).
pub(crate) fn service_error(member: &str, answer: &Answer, retry: Retry) -> AdapterError {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    // Nova and Cinder wrap the fault: {"forbidden": {"message": ..}}, {"overLimit": {..}}.
    let message = body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|f| f.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect()
        });
    let quota = message.to_ascii_lowercase().contains("quota");
    let (kind, retry) = match answer.status {
        StatusCode::UNAUTHORIZED => (ErrorKind::AuthFailed, Retry::Never),
        StatusCode::FORBIDDEN if quota => (ErrorKind::OverQuota, Retry::Never),
        StatusCode::FORBIDDEN => (ErrorKind::AuthFailed, Retry::Never),
        StatusCode::NOT_FOUND => (ErrorKind::NotFound, Retry::Never),
        // Cinder's overLimit (and Nova's, before microversion 2.x rate limits left): over quota.
        StatusCode::PAYLOAD_TOO_LARGE if quota || body.get("overLimit").is_some() => {
            (ErrorKind::OverQuota, Retry::Never)
        }
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
            (ErrorKind::RateLimited, retry)
        }
        s if s.is_server_error() => (ErrorKind::Unavailable, retry),
        _ => (ErrorKind::Invalid, Retry::Never),
    };
    let mut error = AdapterError::new(
        kind,
        ErrorSource::Member,
        retry,
        format!("member {member} answered {}: {message}", answer.status),
    );
    error.retry_after = answer.retry_after();
    error
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
        Ok(Self {
            member: member.to_owned(),
            keystone: Keystone::new(&config.auth_url, credentials),
            mapping,
            http: MemberHttp::new(member)?,
            config,
            page_size: PAGE_SIZE,
            ambiguous: AmbiguousCreates::new(std::time::Duration::from_secs(30)),
        })
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

    /// The same member reached with a wrong secret.
    pub fn with_wrong_secret(&self) -> Result<Self, String> {
        Self::new(
            &self.member,
            self.config.clone(),
            self.keystone_credentials().with_wrong_secret(),
            self.mapping.clone(),
        )
    }

    fn keystone_credentials(&self) -> &Credentials {
        self.keystone.credentials()
    }

    async fn endpoint(
        &self,
        ctx: &CallContext,
        types: &[&str],
    ) -> Result<(Arc<Session>, String), AdapterError> {
        let session = self.keystone.session(&self.http, ctx).await?;
        let url = session
            .endpoint(types, &self.config.region, &self.config.interface)
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::Invalid,
                    ErrorSource::Member,
                    Retry::Never,
                    format!(
                        "the catalogue of member {} offers no {} endpoint in region {} ({})",
                        self.member, types[0], self.config.region, self.config.interface
                    ),
                )
            })?;
        Ok((session, url))
    }

    /// One call to a catalogue service; renews the token once on a 401.
    async fn call(
        &self,
        ctx: &CallContext,
        types: &[&str],
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, AdapterError> {
        // Reads and deletes may be repeated; creates are made safe by the search first.
        let retry = if method == Method::POST || method == Method::PUT {
            Retry::WithIdempotencyKey
        } else {
            Retry::Safe
        };
        for attempt in 0..2 {
            let (session, base) = self.endpoint(ctx, types).await?;
            let mut request = self
                .http
                .request(method.clone(), &format!("{base}{path}"))
                .header("x-auth-token", &session.token)
                .header("accept", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = self.http.send(ctx, request, retry, MAX_BODY).await?;
            if answer.status == StatusCode::UNAUTHORIZED && attempt == 0 {
                // The token was revoked or expired early: authenticate again, once.
                self.keystone.forget().await;
                continue;
            }
            return Ok(answer);
        }
        Err(AdapterError::new(
            ErrorKind::AuthFailed,
            ErrorSource::Member,
            Retry::Never,
            format!("member {} refuses a fresh token", self.member),
        ))
    }

    async fn json(&self, answer: Answer, retry: Retry) -> Result<Value, AdapterError> {
        if !answer.status.is_success() {
            return Err(service_error(&self.member, &answer, retry));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            bad_response(
                retry,
                format!("member {} answered no JSON: {e}", self.member),
            )
        })
    }

    /// Every item of a Nova or Cinder list, page by page (`limit`, and `marker` = the last
    /// id of the previous page), up to `MAX_LISTED` items.
    async fn paged(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        filter: (&str, &str),
        headers: &[(&str, &str)],
        key: &str,
    ) -> Result<Vec<Value>, AdapterError> {
        let mut out: Vec<Value> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let query = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair(filter.0, filter.1);
                q.append_pair("limit", &self.page_size.to_string());
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
                q.finish()
            };
            let answer = self
                .call(
                    ctx,
                    types,
                    Method::GET,
                    &format!("{path}?{query}"),
                    headers,
                    None,
                )
                .await?;
            let body = self.json(answer, Retry::Safe).await?;
            let page = match body.get(key) {
                Some(Value::Array(items)) => items.clone(),
                _ => {
                    return Err(bad_response(
                        Retry::Safe,
                        format!("the member's {key} list is not a list"),
                    ))
                }
            };
            // Until an empty page: a member may cap pages below the limit asked for.
            let full = !page.is_empty();
            let next = page
                .last()
                .and_then(|v| v.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            out.extend(page);
            if !full || next.is_none() || next == marker || out.len() >= MAX_LISTED {
                return Ok(out);
            }
            marker = next;
        }
    }

    /// A server or volume by its member id; `None` when the member does not know it.
    async fn fetch(
        &self,
        ctx: &CallContext,
        kind: Kept,
        id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let path = format!("/{}/{}", kind.collection(), path_segment(id)?);
        let answer = self
            .call(ctx, kind.types(), Method::GET, &path, &kind.headers(), None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = self.json(answer, Retry::Safe).await?;
        Ok(body.get(kind.item()).and_then(|v| kind.read(v)))
    }

    /// Deletes a server or volume by its member id (one already gone is deleted).
    async fn remove(&self, ctx: &CallContext, kind: Kept, id: &str) -> Result<(), AdapterError> {
        let path = format!("/{}/{}", kind.collection(), path_segment(id)?);
        let answer = self
            .call(
                ctx,
                kind.types(),
                Method::DELETE,
                &path,
                &kind.headers(),
                None,
            )
            .await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(service_error(&self.member, &answer, Retry::Safe)),
        }
    }

    /// POSTs a create, unless an earlier attempt with an unknown outcome may still be in
    /// progress at the member (see [`AmbiguousCreates`]); the answer's JSON (`null` when
    /// unreadable: the caller then reports a transient error and the next attempt adopts
    /// the resource by its tag or metadata).
    async fn submit_create(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
        broker_id: &str,
    ) -> Result<Value, AdapterError> {
        self.ambiguous.check(broker_id)?;
        let result = match self
            .call(ctx, types, Method::POST, path, headers, Some(body))
            .await
        {
            Ok(answer) if answer.status.is_success() => {
                Ok(serde_json::from_slice::<Value>(&answer.body).unwrap_or(Value::Null))
            }
            Ok(answer) => Err(service_error(
                &self.member,
                &answer,
                Retry::WithIdempotencyKey,
            )),
            Err(e) => Err(e),
        };
        self.ambiguous.record(broker_id, result.as_ref().err());
        result
    }

    fn broker_tag(broker_id: &str) -> Result<String, AdapterError> {
        let tag = format!("{TAG_MARKER}:{broker_id}");
        if tag.len() > 60 || tag.contains(',') || tag.contains('/') {
            return Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                format!("`{broker_id}` cannot be a Nova server tag"),
            ));
        }
        Ok(tag)
    }

    // ---- Nova ----

    fn compute_headers() -> [(&'static str, &'static str); 2] {
        [
            ("openstack-api-version", "compute 2.52"),
            ("x-openstack-nova-api-version", COMPUTE_MICROVERSION),
        ]
    }

    fn server_of(v: &Value) -> Option<MemberResource> {
        let id = v.get("id")?.as_str()?;
        let status = v.get("status").and_then(Value::as_str).unwrap_or("BUILD");
        let task = v.get("OS-EXT-STS:task_state").and_then(Value::as_str);
        let status = match (status, task) {
            ("DELETED" | "SOFT_DELETED", _) => return None,
            (_, Some("deleting")) => MemberResourceStatus::Deleting,
            ("BUILD", _) => MemberResourceStatus::Provisioning,
            ("ERROR", _) => MemberResourceStatus::Error,
            _ => MemberResourceStatus::Active,
        };
        let meta = v.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        Some(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: id.to_owned(),
            broker_id: text(META_BROKER_ID).map(str::to_owned),
            tenant: text(META_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: v
                .get("fault")
                .and_then(|f| f.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    async fn servers(
        &self,
        ctx: &CallContext,
        tags: &str,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let items = self
            .paged(
                ctx,
                COMPUTE,
                "/servers/detail",
                ("tags", tags),
                &Self::compute_headers(),
                "servers",
            )
            .await?;
        Ok(items.iter().filter_map(Self::server_of).collect())
    }

    async fn find_server(
        &self,
        ctx: &CallContext,
        broker_id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let tag = Self::broker_tag(broker_id)?;
        Ok(self
            .servers(ctx, &tag)
            .await?
            .into_iter()
            .find(|s| s.broker_id.as_deref() == Some(broker_id)))
    }

    async fn get_server(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        match &r.member_resource_id {
            Some(id) => self.fetch(ctx, Kept::Server, id).await,
            None => self.find_server(ctx, &r.broker_id).await,
        }
    }

    async fn create_server(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self.find_server(ctx, &spec.broker_id).await? {
            return Ok(earlier);
        }
        let flavour = alliance_adapter_api::member_name(
            &self.mapping.sizes,
            spec.size.as_ref().map(|s| s.as_str()),
            "size",
        )?;
        let image = alliance_adapter_api::member_name(
            &self.mapping.images,
            spec.image.as_ref().map(|i| i.as_str()),
            "image",
        )?;
        let networks = match &self.config.network {
            Some(id) => json!([{ "uuid": id }]),
            None => json!("auto"),
        };
        let body = json!({ "server": {
            "name": spec.name,
            "imageRef": image,
            "flavorRef": flavour,
            "networks": networks,
            "metadata": { META_BROKER_ID: spec.broker_id, META_TENANT: spec.tenant.as_str() },
            "tags": [TAG_MARKER, Self::broker_tag(&spec.broker_id)?],
        } });
        let created = self
            .submit_create(
                ctx,
                COMPUTE,
                "/servers",
                &Self::compute_headers(),
                &body,
                &spec.broker_id,
            )
            .await?;
        let id = created
            .get("server")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable_create("Nova"))?;
        Ok(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: id.to_owned(),
            broker_id: Some(spec.broker_id.clone()),
            tenant: Some(spec.tenant.clone()),
            status: MemberResourceStatus::Provisioning,
            detail: None,
        })
    }

    async fn delete_server(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let Some(found) = self.get_server(ctx, r).await? else {
            return Ok(());
        };
        self.remove(ctx, Kept::Server, &found.member_resource_id)
            .await
    }

    // ---- Cinder ----

    fn volume_headers() -> [(&'static str, &'static str); 1] {
        [("openstack-api-version", "volume 3.0")]
    }

    fn volume_of(v: &Value) -> Option<MemberResource> {
        let id = v.get("id")?.as_str()?;
        let status = match v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("creating")
        {
            "creating" | "downloading" => MemberResourceStatus::Provisioning,
            "deleting" => MemberResourceStatus::Deleting,
            "error" | "error_deleting" | "error_restoring" | "error_extending" => {
                MemberResourceStatus::Error
            }
            "deleted" => return None,
            _ => MemberResourceStatus::Active,
        };
        let meta = v.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        Some(MemberResource {
            resource_type: ResourceType::Volume,
            member_resource_id: id.to_owned(),
            broker_id: text(META_BROKER_ID).map(str::to_owned),
            tenant: text(META_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: None,
        })
    }

    async fn volumes(
        &self,
        ctx: &CallContext,
        metadata: &Value,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let items = self
            .paged(
                ctx,
                VOLUME,
                "/volumes/detail",
                ("metadata", &metadata.to_string()),
                &Self::volume_headers(),
                "volumes",
            )
            .await?;
        Ok(items.iter().filter_map(Self::volume_of).collect())
    }

    async fn find_volume(
        &self,
        ctx: &CallContext,
        broker_id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        Ok(self
            .volumes(ctx, &json!({ META_BROKER_ID: broker_id }))
            .await?
            .into_iter()
            .find(|v| v.broker_id.as_deref() == Some(broker_id)))
    }

    async fn get_volume(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        match &r.member_resource_id {
            Some(id) => self.fetch(ctx, Kept::Volume, id).await,
            None => self.find_volume(ctx, &r.broker_id).await,
        }
    }

    async fn create_volume(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self.find_volume(ctx, &spec.broker_id).await? {
            return Ok(earlier);
        }
        let size = spec.size_gb.ok_or_else(|| {
            AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                "a volume needs size_gb",
            )
        })?;
        let body = json!({ "volume": {
            "size": size,
            "name": spec.name,
            "metadata": { META_BROKER_ID: spec.broker_id, META_TENANT: spec.tenant.as_str() },
        } });
        let created = self
            .submit_create(
                ctx,
                VOLUME,
                "/volumes",
                &Self::volume_headers(),
                &body,
                &spec.broker_id,
            )
            .await?;
        created
            .get("volume")
            .and_then(Self::volume_of)
            .ok_or_else(|| unreadable_create("Cinder"))
    }

    async fn delete_volume(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let Some(found) = self.get_volume(ctx, r).await? else {
            return Ok(());
        };
        match found.status {
            MemberResourceStatus::Deleting => return Ok(()),
            // Cinder refuses to delete a volume that is still being created (400).
            MemberResourceStatus::Provisioning => {
                return Err(AdapterError::unavailable(
                    "the volume is still being created; it is deleted once it is available",
                )
                .with_retry_after(std::time::Duration::from_secs(2)))
            }
            _ => {}
        }
        self.remove(ctx, Kept::Volume, &found.member_resource_id)
            .await
    }

    // ---- Swift ----

    fn container_name(broker_id: &str) -> Result<String, AdapterError> {
        let name = format!("alliance-{broker_id}");
        if name.len() > 256 || broker_id.is_empty() || broker_id.contains('/') {
            return Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                format!("`{broker_id}` cannot name a Swift container"),
            ));
        }
        Ok(name)
    }

    fn container_of(name: &str, answer: &Answer) -> MemberResource {
        MemberResource {
            resource_type: ResourceType::Bucket,
            member_resource_id: name.to_owned(),
            broker_id: answer
                .header("x-container-meta-alliance-broker-id")
                .map(str::to_owned),
            tenant: answer
                .header("x-container-meta-alliance-tenant")
                .and_then(|t| TenantId::parse(t).ok()),
            status: MemberResourceStatus::Active,
            detail: None,
        }
    }

    async fn head_container(
        &self,
        ctx: &CallContext,
        name: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let answer = self
            .call(
                ctx,
                OBJECT,
                Method::HEAD,
                &format!("/{}", path_segment(name)?),
                &[],
                None,
            )
            .await?;
        match answer.status {
            s if s.is_success() => Ok(Some(Self::container_of(name, &answer))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(service_error(&self.member, &answer, Retry::Safe)),
        }
    }

    async fn get_container(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let name = match &r.member_resource_id {
            Some(n) => n.clone(),
            None => Self::container_name(&r.broker_id)?,
        };
        self.head_container(ctx, &name).await
    }

    async fn create_container(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        let name = Self::container_name(&spec.broker_id)?;
        let headers = [
            (
                "x-container-meta-alliance-broker-id",
                spec.broker_id.as_str(),
            ),
            ("x-container-meta-alliance-tenant", spec.tenant.as_str()),
        ];
        let answer = self
            .call(
                ctx,
                OBJECT,
                Method::PUT,
                &format!("/{}", path_segment(&name)?),
                &headers,
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(service_error(
                &self.member,
                &answer,
                Retry::WithIdempotencyKey,
            ));
        }
        Ok(MemberResource {
            resource_type: ResourceType::Bucket,
            member_resource_id: name,
            broker_id: Some(spec.broker_id.clone()),
            tenant: Some(spec.tenant.clone()),
            status: MemberResourceStatus::Active,
            detail: None,
        })
    }

    async fn delete_container(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<(), AdapterError> {
        let name = match &r.member_resource_id {
            Some(n) => n.clone(),
            None => Self::container_name(&r.broker_id)?,
        };
        let answer = self
            .call(
                ctx,
                OBJECT,
                Method::DELETE,
                &format!("/{}", path_segment(&name)?),
                &[],
                None,
            )
            .await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            // 409: the tenant's objects are still there; the broker never empties a bucket.
            _ => Err(service_error(&self.member, &answer, Retry::Safe)),
        }
    }

    async fn list_containers(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        // Swift pages its listings (`limit`, `marker` = the last name).
        let mut names: Vec<String> = Vec::new();
        loop {
            let query = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("format", "json");
                q.append_pair("prefix", "alliance-");
                q.append_pair("limit", &self.page_size.to_string());
                if let Some(last) = names.last() {
                    q.append_pair("marker", last);
                }
                q.finish()
            };
            let answer = self
                .call(ctx, OBJECT, Method::GET, &format!("?{query}"), &[], None)
                .await?;
            let body = if answer.status == StatusCode::NO_CONTENT {
                json!([])
            } else {
                self.json(answer, Retry::Safe).await?
            };
            let page: Vec<String> = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            // Until an empty page: a proxy may cap listings below the limit asked for.
            let full = !page.is_empty();
            let progressed = page.last() > names.last();
            names.extend(page);
            if !full || !progressed || names.len() >= MAX_LISTED {
                break;
            }
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(c) = self.head_container(ctx, &name).await? {
                if c.broker_id.is_some() && tenant.is_none_or(|t| c.tenant.as_ref() == Some(t)) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    // ---- discovery ----

    async fn first_id(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        list: &str,
        pick: fn(&[Value]) -> Option<&Value>,
    ) -> Result<Option<String>, AdapterError> {
        let answer = self.call(ctx, types, Method::GET, path, &[], None).await?;
        let body = self.json(answer, Retry::Safe).await?;
        let items = body
            .get(list)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(pick(&items)
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }
}

fn smallest(items: &[Value]) -> Option<&Value> {
    items.iter().min_by_key(|f| {
        (
            f.get("ram").and_then(Value::as_u64).unwrap_or(u64::MAX),
            f.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
        )
    })
}

fn first(items: &[Value]) -> Option<&Value> {
    items.first()
}

fn internal(items: &[Value]) -> Option<&Value> {
    items
        .iter()
        .find(|n| n.get("router:external").and_then(Value::as_bool) != Some(true))
}

/// What Nova and Cinder keep for the broker, and how their documents read.
#[derive(Debug, Clone, Copy)]
enum Kept {
    Server,
    Volume,
}

impl Kept {
    fn types(self) -> &'static [&'static str] {
        match self {
            Self::Server => COMPUTE,
            Self::Volume => VOLUME,
        }
    }

    fn headers(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::Server => OpenStackAdapter::compute_headers().to_vec(),
            Self::Volume => OpenStackAdapter::volume_headers().to_vec(),
        }
    }

    fn collection(self) -> &'static str {
        match self {
            Self::Server => "servers",
            Self::Volume => "volumes",
        }
    }

    fn item(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Volume => "volume",
        }
    }

    fn read(self, v: &Value) -> Option<MemberResource> {
        match self {
            Self::Server => OpenStackAdapter::server_of(v),
            Self::Volume => OpenStackAdapter::volume_of(v),
        }
    }
}

/// A create the member accepted but whose answer cannot be read: transient, so that the
/// next attempt adopts the resource by its tag or metadata instead of failing.
fn unreadable_create(service: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Unavailable,
        ErrorSource::Member,
        Retry::WithIdempotencyKey,
        format!("{service} accepted a create with an answer the broker cannot read; the next attempt looks for the resource"),
    )
}

/// A member id used in a URL path: refused when it could escape its segment.
fn path_segment(id: &str) -> Result<&str, AdapterError> {
    if id.is_empty()
        || id.contains('/')
        || id.contains('?')
        || id.contains('#')
        || id == "."
        || id == ".."
    {
        return Err(bad_response(
            Retry::Never,
            format!("`{id}` is not a resource id"),
        ));
    }
    Ok(id)
}

#[async_trait::async_trait]
impl MemberAdapter for OpenStackAdapter {
    fn kind(&self) -> &'static str {
        "openstack"
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        match spec.resource_type {
            ResourceType::Instance => self.create_server(ctx, spec).await,
            ResourceType::Volume => self.create_volume(ctx, spec).await,
            ResourceType::Bucket => self.create_container(ctx, spec).await,
        }
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => self.get_server(ctx, resource).await,
            ResourceType::Volume => self.get_volume(ctx, resource).await,
            ResourceType::Bucket => self.get_container(ctx, resource).await,
        }
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => self.delete_server(ctx, resource).await,
            ResourceType::Volume => self.delete_volume(ctx, resource).await,
            ResourceType::Bucket => self.delete_container(ctx, resource).await,
        }
    }

    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource_type {
            ResourceType::Instance => Ok(self
                .servers(ctx, TAG_MARKER)
                .await?
                .into_iter()
                .filter(|s| {
                    s.broker_id.is_some() && tenant.is_none_or(|t| s.tenant.as_ref() == Some(t))
                })
                .collect()),
            ResourceType::Volume => {
                let filter = match tenant {
                    Some(t) => json!({ META_TENANT: t.as_str() }),
                    None => json!({}),
                };
                Ok(self
                    .volumes(ctx, &filter)
                    .await?
                    .into_iter()
                    .filter(|v| {
                        v.broker_id.is_some() && tenant.is_none_or(|t| v.tenant.as_ref() == Some(t))
                    })
                    .collect())
            }
            ResourceType::Bucket => self.list_containers(ctx, tenant).await,
        }
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        // Authenticating proves Keystone and the credentials; each offered service must be
        // in the catalogue for the configured region and interface.
        for service in &self.mapping.services {
            let types = match service {
                ResourceType::Instance => COMPUTE,
                ResourceType::Volume => VOLUME,
                ResourceType::Bucket => OBJECT,
            };
            self.endpoint(ctx, types).await?;
        }
        self.keystone.session(&self.http, ctx).await.map(|_| ())
    }
}

/// Discovery choices the caller makes itself.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The flavour id.
    pub flavour: Option<String>,
    /// The image id.
    pub image: Option<String>,
    /// The network id.
    pub network: Option<String>,
}

/// What `discover` found.
#[derive(Debug)]
pub struct Discovered {
    /// The adapter, mapping `small` → the flavour and `default` → the image.
    pub adapter: OpenStackAdapter,
    /// The same member with a wrong secret.
    pub bad_credentials: OpenStackAdapter,
    /// The services to check.
    pub services: BTreeSet<ResourceType>,
    /// The services left out, and why.
    pub not_offered: BTreeMap<ResourceType, String>,
    /// Keystone's URL.
    pub auth_url: String,
    /// The region used.
    pub region: String,
}

/// Finds out, from Keystone's catalogue and the services themselves, what the conformance
/// suite needs: the region (when not given, the catalogue's first), the services offered,
/// the smallest flavour, an active image and a network.
pub async fn discover(
    auth_url: Option<&str>,
    region: Option<&str>,
    env_prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: Overrides,
) -> Result<Discovered, String> {
    let auth_url = auth_url
        .map(str::to_owned)
        .or_else(|| env(&format!("{env_prefix}AUTH_URL")))
        .ok_or_else(|| {
            format!("no Keystone URL: pass --member-endpoint or set {env_prefix}AUTH_URL")
        })?;
    let credentials = Credentials::from_env(env_prefix, env)?;
    let http = MemberHttp::new("candidate")?;
    let keystone = Keystone::new(&auth_url, credentials.clone());
    let ctx = CallContext::new(
        None,
        "conformance-discovery",
        std::time::Duration::from_secs(30),
    );
    let session = keystone
        .session(&http, &ctx)
        .await
        .map_err(|e| format!("cannot authenticate with Keystone at {auth_url}: {e}"))?;
    let interface = env(&format!("{env_prefix}INTERFACE")).unwrap_or_else(default_interface);
    let region = match region
        .map(str::to_owned)
        .or_else(|| env(&format!("{env_prefix}REGION_NAME")))
    {
        Some(r) => r,
        None => session
            .regions(&interface)
            .into_iter()
            .next()
            .ok_or_else(|| "the catalogue offers no endpoint on the public interface".to_owned())?,
    };
    let mut config = OpenStackConfig {
        auth_url: auth_url.clone(),
        region: region.clone(),
        interface: interface.clone(),
        env_prefix: env_prefix.to_owned(),
        network: overrides.network.clone(),
    };
    let mut services = BTreeSet::new();
    let mut not_offered = BTreeMap::new();
    let absent = |what: &str| {
        format!("the catalogue offers no {what} endpoint in region {region} ({interface})")
    };
    for (service, types, what) in [
        (ResourceType::Instance, COMPUTE, "compute"),
        (ResourceType::Volume, VOLUME, "block-storage"),
        (ResourceType::Bucket, OBJECT, "object-store"),
    ] {
        if session.endpoint(types, &region, &interface).is_some() {
            services.insert(service);
        } else {
            not_offered.insert(service, absent(what));
        }
    }
    let probe = OpenStackAdapter::new(
        "candidate",
        config.clone(),
        credentials.clone(),
        Mapping::default(),
    )?;
    let mut mapping = Mapping {
        services: services.clone(),
        ..Mapping::default()
    };
    if services.contains(&ResourceType::Instance) {
        let flavour = match overrides.flavour {
            Some(f) => Some(f),
            None => probe
                .first_id(&ctx, COMPUTE, "/flavors/detail", "flavors", smallest)
                .await
                .map_err(|e| e.to_string())?,
        };
        let image = match overrides.image {
            Some(i) => Some(i),
            None if session.endpoint(IMAGE, &region, &interface).is_some() => probe
                .first_id(
                    &ctx,
                    IMAGE,
                    "/v2/images?status=active&sort=name:asc",
                    "images",
                    first,
                )
                .await
                .map_err(|e| e.to_string())?,
            None => None,
        };
        if config.network.is_none() && session.endpoint(NETWORK, &region, &interface).is_some() {
            config.network = probe
                .first_id(&ctx, NETWORK, "/v2.0/networks", "networks", internal)
                .await
                .map_err(|e| e.to_string())?;
        }
        match (flavour, image) {
            (Some(f), Some(i)) => {
                mapping.sizes.insert("small".into(), f);
                mapping.images.insert("default".into(), i);
            }
            _ => {
                services.remove(&ResourceType::Instance);
                mapping.services.remove(&ResourceType::Instance);
                not_offered.insert(
                    ResourceType::Instance,
                    "no flavour or image found (pass --size and --image)".into(),
                );
            }
        }
    }
    let adapter = OpenStackAdapter::new(
        "candidate",
        config.clone(),
        credentials.clone(),
        mapping.clone(),
    )?;
    let bad_credentials = OpenStackAdapter::new(
        "candidate",
        config,
        credentials.with_wrong_secret(),
        mapping,
    )?;
    Ok(Discovered {
        adapter,
        bad_credentials,
        services,
        not_offered,
        auth_url,
        region,
    })
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn answer(status: u16, body: &str, retry_after: Option<&str>) -> Answer {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert(reqwest::header::RETRY_AFTER, r.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn nova_and_cinder_faults_map_to_the_brokers_kinds() {
        let e = service_error(
            "m",
            &answer(
                403,
                r#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#,
                None,
            ),
            Retry::WithIdempotencyKey,
        );
        assert_eq!((e.kind, e.retry), (ErrorKind::OverQuota, Retry::Never));
        let e = service_error(
            "m",
            &answer(
                403,
                r#"{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:create"}}"#,
                None,
            ),
            Retry::Safe,
        );
        assert_eq!(e.kind, ErrorKind::AuthFailed);
        let e = service_error(
            "m",
            &answer(
                413,
                r#"{"overLimit": {"code": 413, "message": "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota.", "retryAfter": "30"}}"#,
                Some("30"),
            ),
            Retry::WithIdempotencyKey,
        );
        assert_eq!(
            (e.kind, e.retry_after),
            (
                ErrorKind::OverQuota,
                Some(std::time::Duration::from_secs(30))
            )
        );
        let e = service_error("m", &answer(429, "", Some("5")), Retry::Safe);
        assert_eq!((e.kind, e.retry), (ErrorKind::RateLimited, Retry::Safe));
        let e = service_error("m", &answer(503, "<html>", None), Retry::Safe);
        assert_eq!(e.kind, ErrorKind::Unavailable);
        let e = service_error(
            "m",
            &answer(
                400,
                r#"{"badRequest": {"message": "Invalid flavorRef"}}"#,
                None,
            ),
            Retry::Safe,
        );
        assert_eq!(
            (e.kind, e.message.contains("Invalid flavorRef")),
            (ErrorKind::Invalid, true)
        );
    }

    #[test]
    fn servers_and_volumes_are_read_from_their_documents() {
        let s = OpenStackAdapter::server_of(&json!({"id": "s1", "status": "BUILD", "metadata": {"alliance_broker_id": "ins-1", "alliance_tenant": "acme"}})).unwrap();
        assert_eq!(
            (s.status, s.broker_id.as_deref()),
            (MemberResourceStatus::Provisioning, Some("ins-1"))
        );
        let s = OpenStackAdapter::server_of(
            &json!({"id": "s1", "status": "ERROR", "fault": {"message": "No valid host"}}),
        )
        .unwrap();
        assert_eq!(
            (s.status, s.detail.as_deref()),
            (MemberResourceStatus::Error, Some("No valid host"))
        );
        let s = OpenStackAdapter::server_of(
            &json!({"id": "s1", "status": "ACTIVE", "OS-EXT-STS:task_state": "deleting"}),
        )
        .unwrap();
        assert_eq!(s.status, MemberResourceStatus::Deleting);
        assert!(OpenStackAdapter::server_of(&json!({"id": "s1", "status": "DELETED"})).is_none());
        let v = OpenStackAdapter::volume_of(&json!({"id": "v1", "status": "available"})).unwrap();
        assert_eq!(v.status, MemberResourceStatus::Active);
        assert!(path_segment("../x").is_err());
        assert!(OpenStackAdapter::broker_tag(&"x".repeat(60)).is_err());
    }
}

#[cfg(test)]
mod token_tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A Keystone double that counts authentications and a compute service that refuses
    /// the first token (as after a revocation), to check renewal and caching.
    async fn keystone_double() -> (String, Arc<AtomicUsize>) {
        use axum::http::{HeaderMap, StatusCode as S};
        let issued = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (count, catalog_url) = (issued.clone(), base.clone());
        let app = axum::Router::new()
            .route(
                "/v3/auth/tokens",
                axum::routing::post(move || {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    let body = json!({ "token": {
                        "expires_at": "2999-01-01T00:00:00.000000Z",
                        "project": { "id": "p1" },
                        "catalog": [{ "type": "compute", "endpoints": [
                            { "interface": "public", "region_id": "r1", "url": format!("{catalog_url}/compute") }] }] } });
                    async move { (S::CREATED, [("x-subject-token", format!("tok-{n}"))], axum::Json(body)) }
                }),
            )
            .route(
                "/compute/servers/detail",
                axum::routing::get(|headers: HeaderMap| async move {
                    if headers.get("x-auth-token").and_then(|v| v.to_str().ok()) == Some("tok-1") {
                        (S::UNAUTHORIZED, axum::Json(json!({})))
                    } else {
                        (S::OK, axum::Json(json!({ "servers": [] })))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, issued)
    }

    #[tokio::test]
    async fn a_refused_token_is_renewed_once_and_the_new_one_is_cached() {
        let (base, issued) = keystone_double().await;
        let config = OpenStackConfig {
            auth_url: format!("{base}/v3"),
            region: "r1".into(),
            interface: "public".into(),
            env_prefix: "OS_".into(),
            network: None,
        };
        let credentials = Credentials::ApplicationCredential {
            id: "i".into(),
            secret: "s".into(),
        };
        let adapter = OpenStackAdapter::new("m", config, credentials, Mapping::default()).unwrap();
        let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
        assert!(adapter
            .list(&ctx, ResourceType::Instance, None)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "the refused token is renewed once"
        );
        adapter
            .list(&ctx, ResourceType::Instance, None)
            .await
            .unwrap();
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "the renewed token is cached"
        );
    }

    #[tokio::test]
    async fn lists_follow_the_members_pages() {
        use axum::extract::Query;
        let pages = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (count, catalog_url) = (pages.clone(), base.clone());
        let app = axum::Router::new()
            .route(
                "/v3/auth/tokens",
                axum::routing::post(move || {
                    let body = json!({ "token": { "expires_at": "2999-01-01T00:00:00Z", "catalog": [{ "type": "compute", "endpoints": [
                        { "interface": "public", "region_id": "r1", "url": format!("{catalog_url}/compute") }] }] } });
                    async move { (axum::http::StatusCode::CREATED, [("x-subject-token", "t")], axum::Json(body)) }
                }),
            )
            .route(
                "/compute/servers/detail",
                axum::routing::get(move |Query(q): Query<std::collections::HashMap<String, String>>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    let all: Vec<Value> = (1..=5)
                        .map(|i| json!({ "id": format!("s{i}"), "status": "ACTIVE", "metadata": { "alliance_broker_id": format!("ins-{i}") } }))
                        .collect();
                    let start = q.get("marker").map_or(0, |m| all.iter().position(|s| s["id"] == m.as_str()).map_or(99, |p| p + 1));
                    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
                    let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
                    async move { axum::Json(json!({ "servers": page })) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = OpenStackConfig {
            auth_url: format!("{base}/v3"),
            region: "r1".into(),
            interface: "public".into(),
            env_prefix: "OS_".into(),
            network: None,
        };
        let credentials = Credentials::ApplicationCredential {
            id: "i".into(),
            secret: "s".into(),
        };
        let mut adapter =
            OpenStackAdapter::new("m", config, credentials, Mapping::default()).unwrap();
        adapter.page_size = 2;
        let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
        let listed = adapter
            .list(&ctx, ResourceType::Instance, None)
            .await
            .unwrap();
        assert_eq!(listed.len(), 5, "{listed:?}");
        assert_eq!(
            pages.load(Ordering::SeqCst),
            4,
            "pages of 2, 2, 1 and an empty one"
        );
    }
}
