//! Provisioning: placing, journaling and deleting tenants' resources.
//!
//! A creating request is placed (`placement`, around the pure `alliance_core::decide`),
//! then the resource, its operation, the audit events and the idempotency response are
//! committed in one transaction and the engine is woken; the client gets 202 and polls the
//! operation. The representation of that 202 is the API's: it hands a [`RenderOperation`]
//! in, so the reply kept for the key is rendered once, inside the transaction's inputs.

pub mod actions;
mod changes;
pub mod engine;
pub mod placement;

use alliance_core::{
    DataClassName, Jurisdiction, MemberId, OperationKind, PlacementRequest, ResourceShape,
    ResourceType,
};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Claim, RequestFacts};
use crate::state::AppState;
use crate::store::{
    new_operation, DeleteStart, IdempotencyKeyRecord, Journal, NewResource, OperationRow,
    ResourceSettings, StoredResponse, TenantScope,
};

pub use placement::evaluate;

/// Renders an accepted operation as the reply the client gets (and a retry replays).
pub type RenderOperation = fn(&OperationRow) -> ApiResult<StoredResponse>;

/// A validated creation request, whatever the type.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Kind.
    pub resource_type: ResourceType,
    /// Tenant's name.
    pub name: String,
    /// Requested jurisdiction.
    pub jurisdiction: Option<Jurisdiction>,
    /// Requested data class.
    pub data_class: Option<DataClassName>,
    /// What the tenant chose (size, image, size_gb), validated at the edge.
    pub shape: ResourceShape,
    /// Pinned member.
    pub member: Option<MemberId>,
    /// What the tenant asked for besides the shape (key, user data, ingress, attach_to).
    pub settings: ResourceSettings,
}

/// The prefix of a resource id, by type.
pub fn id_prefix(resource_type: ResourceType) -> &'static str {
    match resource_type {
        ResourceType::Instance => "ins",
        ResourceType::Volume => "vol",
        ResourceType::Bucket => "bkt",
    }
}

/// A new, time-ordered id with a prefix.
fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A new operation id.
fn id_prefix_op() -> String {
    new_id("op")
}

/// Creates a resource: idempotency, placement, one transaction, 202.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    path: &str,
    canonical_body: &serde_json::Value,
    request: CreateRequest,
    render: RenderOperation,
) -> ApiResult<StoredResponse> {
    let scope = principal.tenant_scope()?;
    let key = match idempotency::claim(state, principal, facts, path, canonical_body).await? {
        Claim::NoKey => None,
        Claim::Replay(stored) => return Ok(stored),
        Claim::Run(key) => Some(key),
    };
    let result = create_claimed(
        state,
        principal,
        facts,
        &scope,
        key.as_ref(),
        request,
        render,
    )
    .await;
    if let (Err(error), Some(key)) = (&result, &key) {
        idempotency::settle_failure(state, key, error).await;
    }
    result
}

async fn create_claimed(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    scope: &TenantScope,
    key: Option<&IdempotencyKeyRecord>,
    mut request: CreateRequest,
    render: RenderOperation,
) -> ApiResult<StoredResponse> {
    // The key as it is now goes with the request: a retried create installs the same one,
    // whatever happens to the key meanwhile.
    if let Some(name) = &request.settings.ssh_key {
        let key = state
            .store
            .ssh_key(scope, name)
            .await?
            .ok_or_else(|| ApiError::not_found("ssh_key", name))?;
        request.settings.ssh_public_key = Some(key.public_key);
    }
    let mut placement_request = PlacementRequest {
        resource_type: request.resource_type,
        jurisdiction: request.jurisdiction,
        data_class: request.data_class.clone(),
        size: request.shape.size.clone(),
        member: request.member.clone(),
        needs: needs_of(&request),
    };
    let colocation = match &request.settings.attach_to {
        Some(instance) => {
            Some(actions::colocate(state, scope, &mut placement_request, instance).await?)
        }
        None => None,
    };
    // Placed on the tenant as this replica last read it, and committed only if the tenant
    // is still at that version: a policy changed on any replica applies at once, without a
    // read of the tenant per request.
    let tenant_row = |row: Option<std::sync::Arc<crate::store::TenantRow>>| {
        row.ok_or_else(|| ApiError::not_found("tenant", scope.tenant().as_str()))
    };
    let mut tenant = tenant_row(state.store.tenant_for_placement(scope.tenant()).await?)?;
    let mut fresh = false;
    for _ in 0..3 {
        let decision = placement::decide_for(state, &tenant, &placement_request)?;
        let mut reasons = decision.reasons(&tenant.policy, &state.config.data_classes);
        reasons.extend(colocation.clone());
        let resource_id = new_id(id_prefix(request.resource_type));
        let decision_details = serde_json::json!({
            "resource_type": request.resource_type.as_str(),
            "jurisdiction": decision.jurisdiction.as_str(),
            "data_class": decision.data_class.as_str(),
            "chosen": decision.chosen().map(|m| m.as_str()),
            "reasons": reasons,
        });
        let tenant_id = Some(scope.tenant().to_string());
        let Some(member) = decision.chosen().cloned() else {
            if !fresh {
                // Refused on what this replica read before: the policy may have been
                // widened since, so the refusal stands only on a fresh read.
                tenant = tenant_row(state.store.tenant_afresh(scope.tenant()).await?)?;
                fresh = true;
                continue;
            }
            let entry = principal.audit(
                "placement.decide",
                tenant_id,
                None,
                "rejected",
                decision_details,
            );
            state
                .store
                .append_audit(&entry, state.clock.now_ms())
                .await?;
            return Err(placement::refusal(&decision, &tenant));
        };
        let now = state.clock.now_ms();
        let resource = NewResource {
            id: resource_id.clone(),
            tenant: scope.tenant().clone(),
            resource_type: request.resource_type,
            name: request.name.clone(),
            jurisdiction: decision.jurisdiction,
            member_id: member.clone(),
            data_class: decision.data_class.clone(),
            shape: request.shape.clone(),
            placement: serde_json::json!({ "reasons": reasons }),
            settings: request.settings.clone(),
        };
        let op_id = new_id("op");
        let operation = new_operation(
            &op_id,
            scope.tenant(),
            &resource_id,
            request.resource_type,
            OperationKind::Create,
            now,
        );
        let stored = render(&operation)?;
        let journal = Journal {
            audit: vec![
                principal.audit(
                    "placement.decide",
                    tenant_id.clone(),
                    Some(resource_id.clone()),
                    "placed",
                    decision_details,
                ),
                principal.audit(
                    &format!("{}.create", request.resource_type),
                    tenant_id,
                    Some(resource_id.clone()),
                    "accepted",
                    serde_json::json!({ "operation": op_id, "member": member.as_str() }),
                ),
            ],
            idempotency: key.map(|k| (k, &stored)),
            traceparent: facts.traceparent.clone(),
            tenant_version: Some(tenant.updated_at),
        };
        let deadline = now + operation_timeout_ms(state);
        if !state
            .store
            .create_resource(&resource, &operation, deadline, &journal)
            .await?
        {
            // The tenant changed since this replica read it: nothing was written; place
            // again on what it is now.
            tenant = tenant_row(state.store.tenant_afresh(scope.tenant()).await?)?;
            fresh = true;
            continue;
        }
        state.wake.notify_one();
        tracing::info!(resource.id = %resource_id, member.id = %member, "placement decided; operation journaled");
        return Ok(stored);
    }
    Err(ApiError::conflict(
        "the tenant's policy kept changing while this creation was placed; nothing was created, retry",
    ))
}

/// What a creation needs its member to offer: an instance reached with a key, user data,
/// rules or a public address needs `instance.access`; a volume created for an instance,
/// `volume.attach`.
fn needs_of(request: &CreateRequest) -> std::collections::BTreeSet<alliance_core::Capability> {
    let s = &request.settings;
    let mut needs = std::collections::BTreeSet::new();
    if s.ssh_key.is_some() || s.user_data.is_some() || !s.ingress.is_empty() || s.public_ip {
        needs.insert(alliance_core::Capability::InstanceAccess);
    }
    if s.attach_to.is_some() {
        needs.insert(alliance_core::Capability::VolumeAttach);
    }
    needs
}

pub(super) fn operation_timeout_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.operations.operation_timeout_ms).unwrap_or(600_000)
}

/// Starts deleting a resource: 202 with the delete operation (the running one, when a
/// delete is already under way).
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    resource_type: ResourceType,
    id: &str,
    render: RenderOperation,
) -> ApiResult<StoredResponse> {
    let scope = principal.tenant_scope()?;
    let now = state.clock.now_ms();
    let op_id = new_id("op");
    let operation = new_operation(
        &op_id,
        scope.tenant(),
        id,
        resource_type,
        OperationKind::Delete,
        now,
    );
    let journal = Journal {
        audit: vec![principal.audit(
            &format!("{resource_type}.delete"),
            Some(scope.tenant().to_string()),
            Some(id.to_owned()),
            "accepted",
            serde_json::json!({ "operation": op_id }),
        )],
        idempotency: None,
        traceparent: facts.traceparent.clone(),
        tenant_version: None,
    };
    let deadline = now + operation_timeout_ms(state);
    let op = match state
        .store
        .begin_delete(&scope, resource_type, id, &operation, deadline, &journal)
        .await?
    {
        DeleteStart::NotFound => return Err(ApiError::not_found(resource_type.as_str(), id)),
        DeleteStart::Busy(why) => return Err(ApiError::conflict(why)),
        DeleteStart::Existing(op) | DeleteStart::Started(op) => op,
    };
    state.wake.notify_one();
    render(&op)
}
