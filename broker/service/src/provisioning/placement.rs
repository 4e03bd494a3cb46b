//! Placement for a tenant's request: the member snapshot, the pure decision, its metric, and
//! why a refusal was a refusal.
//!
//! The decision itself is `alliance_core::decide`; this module only feeds it the tenant's
//! policy and the live member table, and turns a refusal into its problem (with the
//! candidates and the reasons each was rejected, so a tenant can see why).

use std::time::Duration;

use alliance_core::{decide, Decision, PlacementOutcome, PlacementRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::store::{TenantRow, TenantScope};

/// One member's result in a placement decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Candidate {
    /// Member id.
    pub member: String,
    /// Passed every filter.
    pub eligible: bool,
    /// Rank score; higher is better.
    pub score: i64,
    /// Why rejected, or why eligible.
    pub reasons: Vec<String>,
}

/// The candidates of a decision, best first.
pub fn candidates(decision: &Decision) -> Vec<Candidate> {
    decision
        .candidates
        .iter()
        .map(|c| Candidate {
            member: c.member.to_string(),
            eligible: c.eligible,
            score: c.score,
            reasons: decision.reasons_of(c),
        })
        .collect()
}

/// Places a request for the scope's tenant (a dry run when used by evaluate).
pub async fn evaluate(
    state: &AppState,
    scope: &TenantScope,
    request: &PlacementRequest,
) -> ApiResult<Decision> {
    let tenant = tenant_of(state, scope).await?;
    decide_for(state, &tenant, request)
}

/// The scope's tenant row; 404 when it is gone.
pub(crate) async fn tenant_of(state: &AppState, scope: &TenantScope) -> ApiResult<TenantRow> {
    state
        .store
        .tenant(scope.tenant())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", scope.tenant().as_str()))
}

/// The placement decision for a known tenant.
pub(crate) fn decide_for(
    state: &AppState,
    tenant: &TenantRow,
    request: &PlacementRequest,
) -> ApiResult<Decision> {
    if let Some(class) = &request.data_class {
        if !state.config.data_classes.contains_key(class) {
            return Err(ApiError::invalid_field(format!(
                "`data_class`: `{class}` is not defined"
            )));
        }
    }
    if let Some(member) = &request.member {
        if state.members.get(member.as_str()).is_none() {
            return Err(ApiError::invalid_field(format!(
                "`member`: `{member}` is not a member of the alliance"
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

/// The problem for a decision that placed nothing.
pub(crate) fn refusal(decision: &Decision, tenant: &TenantRow) -> ApiError {
    let candidates = candidates(decision);
    match decision.outcome {
        PlacementOutcome::JurisdictionNotAllowed => {
            let allowed: Vec<&str> = tenant
                .policy
                .allowed_jurisdictions
                .iter()
                .map(|j| j.as_str())
                .collect();
            ApiError::new(
                ErrorCode::JurisdictionNotAllowed,
                format!(
                    "jurisdiction {} is not among the tenant's allowed jurisdictions ({})",
                    decision.jurisdiction,
                    allowed.join(", ")
                ),
            )
        }
        PlacementOutcome::UnknownDataClass => ApiError::invalid_field(format!(
            "data class `{}` is not defined",
            decision.data_class
        )),
        PlacementOutcome::MembersUnavailable => ApiError::new(
            ErrorCode::MemberUnavailable,
            format!(
                "every member that could hold this {} in {} is down; retry later",
                decision.resource_type, decision.jurisdiction
            ),
        )
        .with_retry_after(Duration::from_secs(5))
        .with_extensions(serde_json::json!({ "candidates": candidates })),
        PlacementOutcome::NoEligibleMember | PlacementOutcome::Placed(_) => {
            let why: Vec<String> = decision
                .candidates
                .iter()
                .map(|c| format!("{}: {}", c.member, decision.reasons_of(c).join("; ")))
                .collect();
            ApiError::new(
                ErrorCode::NoEligibleMember,
                format!(
                    "no member can hold this {} in {} as data class {}: {}",
                    decision.resource_type,
                    decision.jurisdiction,
                    decision.data_class,
                    why.join(" | ")
                ),
            )
            .with_extensions(serde_json::json!({ "candidates": candidates }))
        }
    }
}
