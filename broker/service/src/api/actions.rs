//! Routes that make resources usable: actions on instances, volume attachments, object URLs.
//!
//! Each handler: typed extractors (permission, path, strict body) → one service call
//! (`provisioning::actions`) → a typed response.

use alliance_adapter_api::ObjectMethod;
use alliance_core::{OperationKind, ResourceType, SizeName};
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::{self, field, StrictJson};
use super::problem::reply;
use super::views::{accepted, OperationView};
use crate::auth::permissions::{ProvisionResources, ReadResources};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult, Problem};
use crate::idempotency::RequestFacts;
use crate::provisioning::actions::{self, ChangeRequest};
use crate::state::AppState;
use crate::store::OperationParams;

/// `POST /v1/instances/{id}/actions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceActionBody {
    /// `start`, `stop`, `reboot` or `resize`.
    pub action: String,
    /// `resize`: the new size (one the instance's member offers).
    pub size: Option<String>,
}

/// `POST /v1/volumes/{id}/attach`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachBody {
    /// One of your instances, at the volume's member.
    pub instance: String,
}

/// `POST /v1/volumes/{id}/detach`: no body, or `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetachBody {}

/// `POST /v1/buckets/{id}/urls`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlBody {
    /// `GET`, `PUT` or `DELETE`.
    #[schema(value_type = String, example = "PUT")]
    pub method: ObjectMethod,
    /// The object's key, e.g. `reports/2026/q4.csv`.
    pub object: String,
    /// Seconds, 1 to 43200 (12 h); 900 by default.
    pub expires_in: Option<i64>,
}

/// A signed, time-limited URL at the bucket's member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UrlView {
    /// Use it as it is (curl, a browser, any HTTP client); it is a secret until it expires.
    pub url: String,
    /// The method it allows.
    pub method: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Start, stop, reboot or resize one of your instances (asynchronous).
#[utoipa::path(post, path = "/v1/instances/{id}/actions", tag = "instances", request_body = InstanceActionBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = OperationView, description = "accepted; the operation's kind is the action"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn instance_action(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    Path(id): Path<String>,
    body: StrictJson<InstanceActionBody>,
) -> ApiResult<Response> {
    let b = &body.value;
    let size = field("size", b.size.as_deref(), SizeName::parse)?;
    let change = actions::instance_change(&b.action, size)?;
    let stored = actions::change(
        &state,
        &auth.principal,
        &facts,
        uri.path(),
        &body.canonical,
        ResourceType::Instance,
        &id,
        change,
        accepted,
    )
    .await?;
    Ok(reply(&stored))
}

/// Attach one of your volumes to an instance at the same member (asynchronous).
#[utoipa::path(post, path = "/v1/volumes/{id}/attach", tag = "volumes", request_body = AttachBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = OperationView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem, description = "`placement.not_colocated` when the instance is at another member")),
    security(("bearer" = [])))]
pub async fn attach_volume(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    Path(id): Path<String>,
    body: StrictJson<AttachBody>,
) -> ApiResult<Response> {
    let instance = json::text("instance", &body.value.instance, 64)?;
    let change = ChangeRequest {
        kind: OperationKind::Attach,
        params: OperationParams {
            size: None,
            instance: Some(instance),
        },
    };
    let stored = actions::change(
        &state,
        &auth.principal,
        &facts,
        uri.path(),
        &body.canonical,
        ResourceType::Volume,
        &id,
        change,
        accepted,
    )
    .await?;
    Ok(reply(&stored))
}

/// Detach one of your volumes (asynchronous).
#[utoipa::path(post, path = "/v1/volumes/{id}/detach", tag = "volumes",
    request_body(content = Option<DetachBody>, description = "no body, or `{}`"),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = OperationView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn detach_volume(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    // No body, or an empty object: nothing else is accepted.
    let canonical = if body.is_empty() {
        serde_json::json!({})
    } else {
        json::parse::<DetachBody>(&body)?.canonical
    };
    let change = ChangeRequest {
        kind: OperationKind::Detach,
        params: OperationParams::default(),
    };
    let stored = actions::change(
        &state,
        &auth.principal,
        &facts,
        uri.path(),
        &canonical,
        ResourceType::Volume,
        &id,
        change,
        accepted,
    )
    .await?;
    Ok(reply(&stored))
}

/// A time-limited URL to get, put or delete one object of your bucket, at its member.
#[utoipa::path(post, path = "/v1/buckets/{id}/urls", tag = "buckets", request_body = UrlBody,
    params(("id" = String, Path)),
    responses((status = 200, body = UrlView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn bucket_url(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    Path(id): Path<String>,
    body: StrictJson<UrlBody>,
) -> ApiResult<Json<UrlView>> {
    let b = &body.value;
    // Reading needs the read permission; writing and deleting, the provisioning one.
    let may_write = auth
        .principal
        .roles
        .iter()
        .any(|r| <ProvisionResources as crate::auth::permissions::Permission>::allows(*r));
    if b.method != ObjectMethod::Get && !may_write {
        return Err(ApiError::forbidden(
            "signing PUT and DELETE URLs needs the tenant_admin role",
        ));
    }
    let request = crate::usable::url_request(b.method, &b.object, b.expires_in)?;
    let signed = actions::object_url(&state, &auth.principal, &id, &request).await?;
    Ok(Json(UrlView {
        url: signed.url,
        method: b.method.as_str().to_owned(),
        expires_at: crate::time::rfc3339(signed.expires_at_ms),
    }))
}
