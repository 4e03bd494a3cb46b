//! Changes to live resources and the URLs of their objects: actions on instances, volume
//! attachments, co-location for volumes created with `attach_to`, and time-limited object
//! URLs at the bucket's member.
//!
//! A change is journaled like a create (idempotency, one transaction, 202 with its
//! operation) and run by the engine (`changes.rs`). An object URL is signed by the member's
//! adapter while the client waits: the broker hands out the URL, audits who asked for which
//! object, method and validity, and never sees the bytes (nor logs the URL).

use alliance_adapter_api::{ObjectUrlRequest, SignedUrl};
use alliance_core::{OperationKind, PlacementRequest, ResourceStatus, ResourceType};

use super::{id_prefix_op, operation_timeout_ms, RenderOperation};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::{self, Claim, RequestFacts};
use crate::state::AppState;
use crate::store::{
    new_operation, ChangeStart, Journal, OperationParams, ResourceRow, StoredResponse, TenantScope,
};

/// A change asked for: its kind and arguments.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    /// What runs (start, stop, reboot, resize, attach, detach).
    pub kind: OperationKind,
    /// Its arguments.
    pub params: OperationParams,
}

/// An instance action as asked for (`start`, `stop`, `reboot`, `resize` with a size): the
/// one rule for the API's body and the console's form.
pub fn instance_change(
    action: &str,
    size: Option<alliance_core::SizeName>,
) -> ApiResult<ChangeRequest> {
    let kind = match action {
        "start" => OperationKind::Start,
        "stop" => OperationKind::Stop,
        "reboot" => OperationKind::Reboot,
        "resize" => OperationKind::Resize,
        _ => {
            return Err(ApiError::invalid_field(
                "`action`: one of start, stop, reboot, resize",
            ))
        }
    };
    match (kind, &size) {
        (OperationKind::Resize, None) => {
            return Err(ApiError::invalid_field(
                "`size`: a resize needs the new size",
            ))
        }
        (OperationKind::Resize, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(ApiError::invalid_field(
                "`size`: only a resize takes a size",
            ))
        }
    }
    Ok(ChangeRequest {
        kind,
        params: OperationParams {
            size,
            instance: None,
        },
    })
}

async fn live(
    state: &AppState,
    scope: &TenantScope,
    resource_type: ResourceType,
    id: &str,
) -> ApiResult<ResourceRow> {
    state
        .store
        .resource(scope, resource_type, id)
        .await?
        .filter(|r| r.status != ResourceStatus::Deleted)
        .ok_or_else(|| ApiError::not_found(resource_type.as_str(), id))
}

/// Pins a volume's placement to the member and jurisdiction of the instance it is for;
/// the reason it gives is shown with the decision.
pub async fn colocate(
    state: &AppState,
    scope: &TenantScope,
    request: &mut PlacementRequest,
    instance_id: &str,
) -> ApiResult<String> {
    let instance = live(state, scope, ResourceType::Instance, instance_id).await?;
    if request
        .jurisdiction
        .is_some_and(|j| j != instance.jurisdiction)
    {
        return Err(ApiError::new(
            ErrorCode::NotColocated,
            format!(
                "`attach_to`: instance {instance_id} is in {}, not in the requested jurisdiction",
                instance.jurisdiction
            ),
        ));
    }
    if request
        .member
        .as_ref()
        .is_some_and(|m| m != &instance.member_id)
    {
        return Err(ApiError::new(
            ErrorCode::NotColocated,
            format!(
                "`attach_to`: instance {instance_id} is at member {}, not at the requested member",
                instance.member_id
            ),
        ));
    }
    request.jurisdiction = Some(instance.jurisdiction);
    request.member = Some(instance.member_id.clone());
    Ok(format!(
        "co-located with instance {instance_id} at {} ({}): a volume attaches only at its instance's member",
        instance.member_id, instance.jurisdiction
    ))
}

/// Checks a change against the resource before it is journaled: the member offers it, a
/// resize's size is offered there, an attachment stays at one member.
async fn check(
    state: &AppState,
    scope: &TenantScope,
    row: &ResourceRow,
    change: &ChangeRequest,
) -> ApiResult<()> {
    let needed = match change.kind {
        OperationKind::Attach | OperationKind::Detach => {
            alliance_adapter_api::Capability::VolumeAttach
        }
        _ => alliance_adapter_api::Capability::InstanceActions,
    };
    let member = member_offering(state, row, needed)?;
    match change.kind {
        OperationKind::Resize => {
            let size =
                change.params.size.as_ref().ok_or_else(|| {
                    ApiError::invalid_field("`size`: a resize needs the new size")
                })?;
            if !member.config.sizes.contains_key(size) {
                return Err(ApiError::invalid_field(format!(
                    "`size`: member {} does not offer `{size}`",
                    row.member_id
                )));
            }
        }
        OperationKind::Attach => {
            let id = change.params.instance.as_deref().unwrap_or_default();
            let instance = live(state, scope, ResourceType::Instance, id).await?;
            if instance.member_id != row.member_id {
                return Err(ApiError::new(
                    ErrorCode::NotColocated,
                    format!(
                        "volume {} is at member {} and instance {id} at {}: a volume attaches only at its own member",
                        row.id, row.member_id, instance.member_id
                    ),
                ));
            }
            if instance.status != ResourceStatus::Active
                && instance.status != ResourceStatus::Updating
            {
                return Err(ApiError::conflict(format!(
                    "instance {id} is {}; attach to an active instance",
                    instance.status
                )));
            }
            if let Some(other) = &row.attached_to {
                return Err(ApiError::conflict(format!(
                    "the volume is attached to {other}; detach it first"
                )));
            }
        }
        OperationKind::Detach if row.attached_to.is_none() => {
            return Err(ApiError::conflict("the volume is not attached"));
        }
        _ => {}
    }
    Ok(())
}

/// The resource's member, when it is reachable and offers `needed` (503, 422 otherwise).
fn member_offering(
    state: &AppState,
    row: &ResourceRow,
    needed: alliance_adapter_api::Capability,
) -> ApiResult<std::sync::Arc<crate::members::MemberEntry>> {
    let member = state.members.get(row.member_id.as_str()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MemberUnavailable,
            format!("member {} is not reachable now", row.member_id),
        )
    })?;
    if !member.adapter.capabilities().contains(&needed) {
        return Err(ApiError::new(
            ErrorCode::MemberUnsupported,
            format!(
                "member {} does not offer `{}`",
                row.member_id,
                needed.as_str()
            ),
        ));
    }
    Ok(member)
}

/// Starts a change on one of the tenant's resources: idempotency, checks, one transaction,
/// 202 with its operation.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's facts, body and target, as every journaled request takes"
)]
pub async fn change(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    path: &str,
    canonical_body: &serde_json::Value,
    resource_type: ResourceType,
    id: &str,
    change: ChangeRequest,
    render: RenderOperation,
) -> ApiResult<StoredResponse> {
    let scope = principal.tenant_scope()?;
    let key = match idempotency::claim(state, principal, facts, path, canonical_body).await? {
        Claim::NoKey => None,
        Claim::Replay(stored) => return Ok(stored),
        Claim::Run(key) => Some(key),
    };
    let result = async {
        let row = live(state, &scope, resource_type, id).await?;
        check(state, &scope, &row, &change).await?;
        let now = state.clock.now_ms();
        let op_id = id_prefix_op();
        let mut operation =
            new_operation(&op_id, scope.tenant(), id, resource_type, change.kind, now);
        operation.params = change.params.clone();
        let stored = render(&operation)?;
        let mut details =
            serde_json::json!({ "operation": op_id, "member": row.member_id.as_str() });
        if let Some(size) = &change.params.size {
            details["size"] = serde_json::json!(size.as_str());
        }
        if let Some(instance) = &change.params.instance {
            details["instance"] = serde_json::json!(instance);
        }
        let journal = Journal {
            audit: vec![principal.audit(
                &format!("{resource_type}.{}", change.kind),
                Some(scope.tenant().to_string()),
                Some(id.to_owned()),
                "accepted",
                details,
            )],
            idempotency: key.as_ref().map(|k| (k, &stored)),
            traceparent: facts.traceparent.clone(),
            tenant_version: None,
        };
        let deadline = now + operation_timeout_ms(state);
        match state
            .store
            .begin_change(&scope, resource_type, id, &operation, deadline, &journal)
            .await?
        {
            ChangeStart::NotFound => Err(ApiError::not_found(resource_type.as_str(), id)),
            ChangeStart::Busy(why) => Err(ApiError::conflict(why)),
            ChangeStart::Started(_) => {
                state.wake.notify_one();
                Ok(stored)
            }
        }
    }
    .await;
    if let (Err(error), Some(key)) = (&result, &key) {
        idempotency::settle_failure(state, key, error).await;
    }
    result
}

/// A signed, time-limited URL for one object of one of the tenant's buckets, audited.
pub async fn object_url(
    state: &AppState,
    principal: &Principal,
    id: &str,
    request: &ObjectUrlRequest,
) -> ApiResult<SignedUrl> {
    let scope = principal.tenant_scope()?;
    let row = live(state, &scope, ResourceType::Bucket, id).await?;
    if row.status != ResourceStatus::Active {
        return Err(ApiError::conflict(format!(
            "the bucket is {}; URLs are signed for active buckets",
            row.status
        )));
    }
    let member = member_offering(state, &row, alliance_adapter_api::Capability::ObjectUrls)?;
    let ctx = alliance_adapter_api::CallContext::new(
        Some(scope.tenant().clone()),
        format!("url-{}", uuid::Uuid::new_v4().simple()),
        std::time::Duration::from_millis(state.config.operations.call_timeout_ms),
    );
    let reference = alliance_adapter_api::ResourceRef {
        resource_type: ResourceType::Bucket,
        broker_id: row.id.clone(),
        member_resource_id: row.member_resource_id.clone(),
    };
    let signed = member
        .adapter
        .object_url(&ctx, &reference, request)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, member.id = %row.member_id, "the member cannot sign an object URL");
            let code = match e.kind {
                alliance_adapter_api::ErrorKind::Invalid
                    if e.origin == alliance_adapter_api::ErrorSource::Broker =>
                {
                    ErrorCode::MemberUnsupported
                }
                alliance_adapter_api::ErrorKind::Invalid => ErrorCode::MemberRejected,
                alliance_adapter_api::ErrorKind::NotFound => ErrorCode::NotFound,
                _ => ErrorCode::MemberUnavailable,
            };
            ApiError::new(code, format!("member {} cannot sign the URL: {}", row.member_id, e.message))
        })?;
    // Who asked for which object, how and until when; never the URL (a bearer secret).
    let entry = principal.audit(
        "bucket.url",
        Some(scope.tenant().to_string()),
        Some(row.id.clone()),
        "issued",
        serde_json::json!({
            "member": row.member_id.as_str(),
            "object": request.object,
            "method": request.method.as_str(),
            "expires_at": crate::time::rfc3339(signed.expires_at_ms),
        }),
    );
    state
        .store
        .append_audit(&entry, state.clock.now_ms())
        .await?;
    Ok(signed)
}
