//! Statements and reconciliations.

use alliance_core::billing::Period;
use alliance_core::reconcile::Tolerance;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use super::json::StrictJson;
use super::problem::idempotent;
use crate::auth::permissions::{Reconcile, UploadStatements};
use crate::auth::{Authorized, Role};
use crate::error::{ApiError, ApiResult, Problem};
use crate::idempotency::{json_reply, RequestFacts};
use crate::reconciliation::{self, tolerance_value};
use crate::state::AppState;

/// Upload a member's statement for a period (FOCUS CSV): its partner, or billing.
#[utoipa::path(put, path = "/v1/members/{id}/statements/{period}", tag = "billing", params(("id" = String, Path), ("period" = String, Path)),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 204, description = "stored"), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    auth: Authorized<UploadStatements>,
    Path((id, period)): Path<(String, String)>,
    super::extract::RawBody(body): super::extract::RawBody,
) -> ApiResult<StatusCode> {
    let own = auth
        .principal
        .member
        .as_ref()
        .is_some_and(|m| m.as_str() == id);
    if (!own && !auth.principal.has(Role::Billing)) || state.members.get(&id).is_none() {
        return Err(ApiError::not_found("member", &id));
    }
    reconciliation::upload_statement(&state, &auth.principal, &id, &period, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/reconciliations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    /// `YYYY-MM`.
    pub period: String,
    /// The member.
    pub member: String,
    /// Tolerated absolute difference (decimal string); 0.000001 by default.
    pub tolerance_absolute: Option<String>,
    /// Seconds the two clocks may be apart at each end of a span; the member's
    /// `clock_skew_seconds` (5 unless configured) by default.
    #[schema(minimum = 0, maximum = 86400)]
    pub tolerance_clock_skew_seconds: Option<u32>,
    /// Tolerated relative difference (decimal string); 0 by default.
    pub tolerance_relative: Option<String>,
}

/// Reconcile a member's statement for a period with the broker's ledger: billing, operators.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "billing", request_body = ReconcileRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, description = "the report"), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Authorized<Reconcile>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<ReconcileRequest>,
) -> ApiResult<Response> {
    let action = async {
        let b = &body.value;
        let request = reconciliation::Request {
            period: Period::parse(&b.period)
                .map_err(|e| ApiError::invalid_field(format!("`period`: {e}")))?,
            member: b.member.clone(),
            tolerance: Tolerance {
                absolute: tolerance_value(
                    "tolerance_absolute",
                    b.tolerance_absolute.as_deref(),
                    Tolerance::default().absolute,
                )?,
                relative: tolerance_value(
                    "tolerance_relative",
                    b.tolerance_relative.as_deref(),
                    Decimal::ZERO,
                )?,
                clock_skew_seconds: match b.tolerance_clock_skew_seconds {
                    Some(s) if s > 86_400 => {
                        return Err(ApiError::invalid_field(
                            "`tolerance_clock_skew_seconds`: at most 86400",
                        ))
                    }
                    Some(s) => s,
                    None => reconciliation::default_clock_skew(&state, &b.member),
                },
            },
        };
        let by = format!("{}|{}", auth.principal.issuer, auth.principal.subject);
        let report = reconciliation::create(&state, &by, &request).await?;
        json_reply(201, None, &report)
    };
    idempotent(
        &state,
        &auth.principal,
        &facts,
        &uri,
        &body.canonical,
        action,
    )
    .await
}

/// A reconciliation report: billing, operators.
#[utoipa::path(get, path = "/v1/reconciliations/{id}", operation_id = "get_reconciliation", tag = "billing", params(("id" = String, Path)), responses((status = 200, description = "the report"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _auth: Authorized<Reconcile>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state
        .store
        .reconciliation(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("reconciliation", &id))
}
