//! The reference member's 1.1 routes: actions on instances, volume attachments and signed
//! object URLs, over the same journaled table as the rest of `member-sim`.
//!
//! An action is applied once per `Idempotency-Key` (the broker sends its operation's id),
//! so a retried call has one effect.

use alliance_adapter_api::{InstanceAction, ObjectUrlRequest, ResourceRef};
use alliance_core::ResourceType;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::protocol::{Attachment, Resource, SignedUrlAnswer, UrlRequest};
use crate::server::{adapter_problem, ctx, problem, valid_id, Shared};

/// A refusal, answered as it is (boxed: a response is large next to the values).
type Refusal = Box<Response>;

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation.invalid_field",
            format!("invalid body: {e}"),
        ))
    })
}

fn checked(id: &str) -> Result<(), Refusal> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "validation.invalid_field",
            "not a resource id",
        )))
    }
}

fn of(resource_type: ResourceType, id: &str) -> ResourceRef {
    ResourceRef {
        resource_type,
        broker_id: id.to_owned(),
        member_resource_id: None,
    }
}

/// `POST /resources/{id}/actions`: `{"action":"start"|"stop"|"reboot"|"resize","size"?}`.
pub(crate) async fn act(
    State(member): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    if let Err(r) = checked(&id) {
        return *r;
    }
    let action: InstanceAction = match body(&bytes) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let mut call = ctx();
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        call.idempotency_key = key.to_owned();
    }
    use alliance_adapter_api::MemberAdapter;
    match member
        .sim
        .act(&call, &of(ResourceType::Instance, &id), &action)
        .await
    {
        Ok(r) => Json(Resource::from(&r)).into_response(),
        Err(e) => adapter_problem(e),
    }
}

/// `PUT /resources/{volume}/attachment`: `{"instance": "<broker id>"}`.
pub(crate) async fn attach(
    State(member): State<Shared>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    if let Err(r) = checked(&id) {
        return *r;
    }
    let attachment: Attachment = match body(&bytes) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if let Err(r) = checked(&attachment.instance) {
        return *r;
    }
    use alliance_adapter_api::MemberAdapter;
    match member
        .sim
        .attach(
            &ctx(),
            &of(ResourceType::Volume, &id),
            &of(ResourceType::Instance, &attachment.instance),
        )
        .await
    {
        Ok(r) => Json(Resource::from(&r)).into_response(),
        Err(e) => adapter_problem(e),
    }
}

/// `DELETE /resources/{volume}/attachment`.
pub(crate) async fn detach(State(member): State<Shared>, Path(id): Path<String>) -> Response {
    if let Err(r) = checked(&id) {
        return *r;
    }
    use alliance_adapter_api::MemberAdapter;
    match member
        .sim
        .detach(&ctx(), &of(ResourceType::Volume, &id))
        .await
    {
        Ok(r) => Json(Resource::from(&r)).into_response(),
        Err(e) => adapter_problem(e),
    }
}

/// `POST /resources/{bucket}/urls`: `{"method","object","expires_in"}`.
pub(crate) async fn sign(
    State(member): State<Shared>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    if let Err(r) = checked(&id) {
        return *r;
    }
    let request: UrlRequest = match body(&bytes) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let max = alliance_adapter_api::MAX_URL_VALIDITY.as_secs();
    if !(1..=max).contains(&request.expires_in)
        || request.object.is_empty()
        || request.object.chars().any(char::is_control)
        || request
            .object
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation.invalid_field",
            format!(
                "an object key without `..` or control characters, and expires_in from 1 to {max}"
            ),
        );
    }
    let request = ObjectUrlRequest {
        object: request.object,
        method: request.method,
        expires_in: std::time::Duration::from_secs(request.expires_in),
    };
    use alliance_adapter_api::MemberAdapter;
    match member
        .sim
        .object_url(&ctx(), &of(ResourceType::Bucket, &id), &request)
        .await
    {
        Ok(signed) => Json(SignedUrlAnswer {
            url: signed.url,
            expires_at: signed.expires_at_ms / 1000,
        })
        .into_response(),
        Err(e) => adapter_problem(e),
    }
}
