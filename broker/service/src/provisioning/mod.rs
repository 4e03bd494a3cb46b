//! Provisioning: placing, journaling and deleting tenants' resources.
//!
//! A creating request is placed (pure `alliance_core::decide`), then the resource, its
//! operation, the audit events and the idempotency response are committed in one
//! transaction and the engine is woken; the client gets 202 and polls the operation.

pub mod engine;
pub mod views;

use std::time::Duration;

use alliance_core::{
    decide, DataClassName, Decision, ImageName, Jurisdiction, MemberId, PlacementOutcome,
    PlacementRequest, ResourceType, SizeName,
};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{
    new_operation, AuditEntry, DeleteStart, IdempotencyClaim, IdempotencyKeyRecord, Journal,
    NewResource, StoredResponse, TenantScope,
};
use crate::time::now_ms;

/// How long idempotency keys live.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an in-flight key is locked before a crashed request's claim may be taken over.
const IDEMPOTENCY_LOCK: Duration = Duration::from_secs(60);

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
    /// Instance size.
    pub size: Option<SizeName>,
    /// Instance image.
    pub image: Option<ImageName>,
    /// Volume size.
    pub size_gb: Option<u32>,
    /// Pinned member.
    pub member: Option<MemberId>,
}

/// Facts about the HTTP request kept in the books.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `traceparent` of the request span.
    pub traceparent: Option<String>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

impl RequestFacts {
    /// Reads the facts from the request headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            request_id: text("x-request-id"),
            traceparent: text("traceparent"),
            idempotency_key: text("idempotency-key"),
        }
    }
}

/// Places a request for the principal's tenant (a dry run when used by evaluate).
pub async fn evaluate(
    state: &AppState,
    scope: &TenantScope,
    request: &PlacementRequest,
) -> ApiResult<Decision> {
    let tenant = tenant_of(state, scope).await?;
    decide_for(state, &tenant, request)
}

async fn tenant_of(state: &AppState, scope: &TenantScope) -> ApiResult<crate::store::TenantRow> {
    state
        .store
        .tenant(scope.tenant())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", scope.tenant().as_str()))
}

/// The placement decision for a known tenant.
fn decide_for(
    state: &AppState,
    tenant: &crate::store::TenantRow,
    request: &PlacementRequest,
) -> ApiResult<Decision> {
    if let Some(class) = &request.data_class {
        if !state.config.data_classes.contains_key(class) {
            return Err(ApiError::invalid_field(format!(
                "data class `{class}` is not defined"
            )));
        }
    }
    if let Some(member) = &request.member {
        if state.members.get(member.as_str()).is_none() {
            return Err(ApiError::invalid_field(format!(
                "member `{member}` is not a member of the alliance"
            )));
        }
    }
    let candidates = state
        .members
        .candidates(request.resource_type, request.size.as_ref());
    let decision = decide(
        request,
        &tenant.policy,
        &state.config.data_classes,
        &candidates,
    );
    let outcome = match decision.outcome {
        PlacementOutcome::Placed(_) => "placed",
        PlacementOutcome::JurisdictionNotAllowed => "jurisdiction_not_allowed",
        PlacementOutcome::UnknownDataClass => "unknown_data_class",
        PlacementOutcome::NoEligibleMember => "no_eligible_member",
        PlacementOutcome::MembersUnavailable => "members_unavailable",
    };
    metrics::counter!("alliance_placement_decisions_total", "outcome" => outcome).increment(1);
    Ok(decision)
}

fn placement_error(decision: &Decision, tenant_allowed: &str) -> ApiError {
    let candidates = views::candidates_json(decision);
    match decision.outcome {
        PlacementOutcome::JurisdictionNotAllowed => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "placement.jurisdiction_not_allowed",
            format!("jurisdiction {} is not among the tenant's allowed jurisdictions ({tenant_allowed})", decision.jurisdiction),
        ),
        PlacementOutcome::UnknownDataClass => ApiError::invalid_field(format!("data class `{}` is not defined", decision.data_class)),
        PlacementOutcome::MembersUnavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "member.unavailable",
            format!("every member that could hold this {} in {} is down; retry later", decision.resource_type, decision.jurisdiction),
        )
        .with_retry_after(Duration::from_secs(5))
        .with_extensions(serde_json::json!({ "candidates": candidates })),
        _ => {
            let why: Vec<String> = decision
                .candidates
                .iter()
                .map(|c| format!("{}: {}", c.member, decision.reasons_of(c).join("; ")))
                .collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "placement.no_eligible_member",
                format!("no member can hold this {} in {} as data class {}: {}", decision.resource_type, decision.jurisdiction, decision.data_class, why.join(" | ")),
            )
            .with_extensions(serde_json::json!({ "candidates": candidates }))
        }
    }
}

fn audit(
    principal: &Principal,
    facts: &RequestFacts,
    action: String,
    resource_id: Option<String>,
    outcome: &str,
    details: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        actor: principal.subject.clone(),
        roles: principal.role_names(),
        tenant: principal.tenant.as_ref().map(|t| t.to_string()),
        action,
        resource_id,
        outcome: outcome.into(),
        request_id: facts.request_id.clone(),
        details,
    }
}

fn stored_to_response(stored: &StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body.clone()).into_response();
    let content_type = if status.is_success() {
        "application/json"
    } else {
        crate::error::PROBLEM_JSON
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(location) = stored
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Validates an `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_record(
    principal: &Principal,
    key: &str,
    fingerprint: String,
) -> ApiResult<IdempotencyKeyRecord> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "idempotency.invalid_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(IdempotencyKeyRecord {
        tenant: principal
            .tenant
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.to_string()),
        subject: format!("{}|{}", principal.issuer, principal.subject),
        key: key.to_owned(),
        fingerprint,
    })
}

/// Fingerprint of a request: method, path and the canonical JSON body.
pub fn fingerprint(method: &str, path: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// What claiming a request's `Idempotency-Key` decided.
enum Claim {
    /// No key: run the request.
    NoKey,
    /// The key is ours: run the request, then record its outcome.
    Run(IdempotencyKeyRecord),
    /// Answer this without running anything (a replay, or a refusal of the key).
    Answer(ApiResult<Response>),
}

async fn claim(
    state: &AppState,
    principal: &Principal,
    key: Option<&str>,
    path: &str,
    canonical_body: &serde_json::Value,
) -> ApiResult<Claim> {
    let Some(key) = key else {
        return Ok(Claim::NoKey);
    };
    let key = idempotency_record(principal, key, fingerprint("POST", path, canonical_body))?;
    let now = now_ms();
    let lock = i64::try_from(IDEMPOTENCY_LOCK.as_millis()).unwrap_or(60_000);
    let ttl = i64::try_from(IDEMPOTENCY_TTL.as_millis()).unwrap_or(86_400_000);
    Ok(
        match state
            .store
            .claim_idempotency_key(&key, now, lock, ttl)
            .await?
        {
            IdempotencyClaim::Claimed => Claim::Run(key),
            IdempotencyClaim::Replay(stored) => Claim::Answer(Ok(stored_to_response(&stored))),
            IdempotencyClaim::Mismatch => Claim::Answer(Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency.key_reused",
                "this Idempotency-Key was used with a different request",
            ))),
            IdempotencyClaim::InFlight => Claim::Answer(Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency.in_flight",
                "the first request with this Idempotency-Key is still in flight; retry shortly",
            )
            .with_retry_after(Duration::from_secs(1)))),
        },
    )
}

/// Records a failed first response: refusals are part of it and are replayed; transient
/// failures release the key so that the client can retry.
async fn settle_failure(state: &AppState, key: &IdempotencyKeyRecord, error: &ApiError) {
    let outcome = if error.status.is_client_error() {
        let stored = StoredResponse {
            status: error.status.as_u16(),
            location: None,
            body: String::from_utf8_lossy(&error.body()).into_owned(),
        };
        state.store.complete_idempotency_key(key, &stored).await
    } else {
        state.store.release_idempotency_key(key).await
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "cannot record the idempotency outcome");
    }
}

/// Runs a creating POST other than a resource's (tenants, partner applications,
/// reconciliations) under its `Idempotency-Key`, when the client sent one: the first
/// response, success or refusal, is kept and replayed byte for byte; another body with the
/// same key is 422, the same key while the first runs is 409. The response is recorded
/// just after the change commits (resources record it in the same transaction): a crash
/// in between leaves the key in flight until its lock expires (60 s).
pub async fn with_idempotency_key(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    path: &str,
    canonical_body: &serde_json::Value,
    action: impl std::future::Future<Output = ApiResult<Response>>,
) -> ApiResult<Response> {
    let facts = RequestFacts::from_headers(headers);
    let key = match claim(
        state,
        principal,
        facts.idempotency_key.as_deref(),
        path,
        canonical_body,
    )
    .await?
    {
        Claim::NoKey => return action.await,
        Claim::Answer(answer) => return answer,
        Claim::Run(key) => key,
    };
    match action.await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
                .await
                .map_err(|e| {
                    ApiError::internal(format!("cannot read a response to keep it: {e}"))
                })?;
            let stored = StoredResponse {
                status: parts.status.as_u16(),
                location: parts
                    .headers
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            };
            if let Err(e) = state.store.complete_idempotency_key(&key, &stored).await {
                tracing::warn!(error = %e, "cannot record the idempotency outcome");
            }
            Ok(Response::from_parts(parts, axum::body::Body::from(bytes)))
        }
        Err(error) => {
            settle_failure(state, &key, &error).await;
            Err(error)
        }
    }
}

/// Creates a resource: idempotency, placement, one transaction, 202.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    path: &str,
    canonical_body: &serde_json::Value,
    request: CreateRequest,
) -> ApiResult<Response> {
    let scope = principal.tenant_scope()?;
    let key = match claim(
        state,
        principal,
        facts.idempotency_key.as_deref(),
        path,
        canonical_body,
    )
    .await?
    {
        Claim::NoKey => None,
        Claim::Answer(answer) => return answer,
        Claim::Run(key) => Some(key),
    };
    let result = create_claimed(state, principal, facts, &scope, key.as_ref(), request).await;
    if let (Err(error), Some(key)) = (&result, &key) {
        settle_failure(state, key, error).await;
    }
    result
}

async fn create_claimed(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    scope: &TenantScope,
    key: Option<&IdempotencyKeyRecord>,
    request: CreateRequest,
) -> ApiResult<Response> {
    let placement = PlacementRequest {
        resource_type: request.resource_type,
        jurisdiction: request.jurisdiction,
        data_class: request.data_class.clone(),
        size: request.size.clone(),
        member: request.member.clone(),
    };
    let tenant = tenant_of(state, scope).await?;
    let decision = decide_for(state, &tenant, &placement)?;
    let reasons = decision.reasons(&tenant.policy, &state.config.data_classes);
    let resource_id = format!(
        "{}-{}",
        views::id_prefix(request.resource_type),
        uuid::Uuid::now_v7().simple()
    );
    let decision_details = serde_json::json!({
        "resource_type": request.resource_type.as_str(),
        "jurisdiction": decision.jurisdiction.as_str(),
        "data_class": decision.data_class.as_str(),
        "chosen": decision.chosen().map(|m| m.as_str()),
        "reasons": reasons,
    });
    let Some(member) = decision.chosen().cloned() else {
        let entry = audit(
            principal,
            facts,
            "placement.decide".into(),
            None,
            "rejected",
            decision_details,
        );
        state.store.append_audit(&entry, now_ms()).await?;
        let allowed: Vec<&str> = tenant
            .policy
            .allowed_jurisdictions
            .iter()
            .map(|j| j.as_str())
            .collect();
        return Err(placement_error(&decision, &allowed.join(", ")));
    };
    let now = now_ms();
    let mut spec = serde_json::Map::new();
    if let Some(size) = &request.size {
        spec.insert("size".into(), size.as_str().into());
    }
    if let Some(image) = &request.image {
        spec.insert("image".into(), image.as_str().into());
    }
    if let Some(gb) = request.size_gb {
        spec.insert("size_gb".into(), gb.into());
    }
    let resource = NewResource {
        id: resource_id.clone(),
        tenant: scope.tenant().clone(),
        resource_type: request.resource_type,
        name: request.name,
        jurisdiction: decision.jurisdiction.to_string(),
        member_id: member.to_string(),
        data_class: decision.data_class.to_string(),
        spec: serde_json::Value::Object(spec),
        placement: serde_json::json!({ "reasons": reasons }),
    };
    let op_id = format!("op-{}", uuid::Uuid::now_v7().simple());
    let operation = new_operation(
        &op_id,
        scope.tenant().as_str(),
        &resource_id,
        request.resource_type,
        "create",
        now,
    );
    let stored = StoredResponse {
        status: 202,
        location: Some(format!("/v1/operations/{op_id}")),
        body: serde_json::to_string(&views::OperationView::from(&operation))
            .map_err(ApiError::internal)?,
    };
    let journal = Journal {
        audit: vec![
            audit(
                principal,
                facts,
                "placement.decide".into(),
                Some(resource_id.clone()),
                "placed",
                decision_details,
            ),
            audit(
                principal,
                facts,
                format!("{}.create", request.resource_type),
                Some(resource_id.clone()),
                "accepted",
                serde_json::json!({ "operation": op_id, "member": member.as_str() }),
            ),
        ],
        idempotency: key.map(|k| (k, &stored)),
        traceparent: facts.traceparent.clone(),
    };
    let deadline =
        now + i64::try_from(state.config.operations.operation_timeout_ms).unwrap_or(600_000);
    state
        .store
        .create_resource(&resource, &operation, deadline, &journal)
        .await?;
    state.wake.notify_one();
    tracing::info!(resource.id = %resource_id, member.id = %member, "placement decided; operation journaled");
    Ok(stored_to_response(&stored))
}

/// Starts deleting a resource: 202 with the delete operation.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    resource_type: ResourceType,
    id: &str,
) -> ApiResult<Response> {
    let scope = principal.tenant_scope()?;
    let now = now_ms();
    let op_id = format!("op-{}", uuid::Uuid::now_v7().simple());
    let operation = new_operation(
        &op_id,
        scope.tenant().as_str(),
        id,
        resource_type,
        "delete",
        now,
    );
    let journal = Journal {
        audit: vec![audit(
            principal,
            facts,
            format!("{resource_type}.delete"),
            Some(id.to_owned()),
            "accepted",
            serde_json::json!({ "operation": op_id }),
        )],
        idempotency: None,
        traceparent: facts.traceparent.clone(),
    };
    let deadline =
        now + i64::try_from(state.config.operations.operation_timeout_ms).unwrap_or(600_000);
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
    let body =
        serde_json::to_string(&views::OperationView::from(&op)).map_err(ApiError::internal)?;
    Ok(stored_to_response(&StoredResponse {
        status: 202,
        location: Some(format!("/v1/operations/{}", op.id)),
        body,
    }))
}
