//! Statements and reconciliations.

use alliance_core::billing::Period;
use alliance_core::reconcile::{reconcile, FocusReader, Tolerance};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use super::json::StrictJson;
use crate::auth::permissions::{Reconcile, UploadStatements};
use crate::auth::{Authorized, Role};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::time::now_ms;

/// Largest statement accepted over the API.
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
    Period::parse(&period).map_err(|e| ApiError::invalid_field(e.to_string()))?;
    let invalid = |e: alliance_core::reconcile::FocusError| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "statement.invalid",
            format!("the statement is not valid FOCUS: {e}"),
        )
        .with_extensions(serde_json::json!({ "row": e.row, "column": e.column }))
    };
    let reader = FocusReader::new(body.as_ref()).map_err(invalid)?;
    let mut rows = 0u64;
    for row in reader {
        row.map_err(invalid)?;
        rows += 1;
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid_field("the statement is not UTF-8"))?;
    let by = format!("{}|{}", auth.principal.issuer, auth.principal.subject);
    let entry = crate::store::AuditEntry {
        actor: auth.principal.subject.clone(),
        roles: auth.principal.role_names(),
        tenant: None,
        action: "statement.upload".into(),
        resource_id: Some(id.clone()),
        outcome: "succeeded".into(),
        request_id: auth.principal.request_id.clone(),
        details: serde_json::json!({ "period": period, "rows": rows }),
    };
    state
        .store
        .put_statement(&id, &period, &text, &by, &entry, now_ms())
        .await?;
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
    /// Tolerated relative difference (decimal string); 0 by default.
    pub tolerance_relative: Option<String>,
}

/// Reconcile a member's statement for a period with the broker's ledger: billing, operators.
#[utoipa::path(post, path = "/v1/reconciliations", tag = "billing", request_body = ReconcileRequest,
    responses((status = 201, description = "the report"), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Authorized<Reconcile>,
    headers: axum::http::HeaderMap,
    body: StrictJson<ReconcileRequest>,
) -> ApiResult<axum::response::Response> {
    let canonical = body.canonical.clone();
    let action = create_now(&state, &auth, body);
    crate::provisioning::with_idempotency_key(
        &state,
        &auth.principal,
        &headers,
        "/v1/reconciliations",
        &canonical,
        async {
            action
                .await
                .map(axum::response::IntoResponse::into_response)
        },
    )
    .await
}

async fn create_now(
    state: &AppState,
    auth: &Authorized<Reconcile>,
    body: StrictJson<ReconcileRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let request = body.value;
    let period = Period::parse(&request.period)
        .map_err(|e| ApiError::invalid_field(format!("`period`: {e}")))?;
    let entry = state.members.get(&request.member).ok_or_else(|| {
        ApiError::invalid_field(format!("`member`: `{}` is not a member", request.member))
    })?;
    let decimal = |name: &str, v: &Option<String>, default: Decimal| -> ApiResult<Decimal> {
        match v {
            None => Ok(default),
            Some(v) => v
                .parse::<Decimal>()
                .ok()
                .filter(|d| !d.is_sign_negative())
                .ok_or_else(|| {
                    ApiError::invalid_field(format!(
                        "`{name}`: `{v}` is not a non-negative decimal"
                    ))
                }),
        }
    };
    let tolerance = Tolerance {
        absolute: decimal(
            "tolerance_absolute",
            &request.tolerance_absolute,
            Tolerance::default().absolute,
        )?,
        relative: decimal(
            "tolerance_relative",
            &request.tolerance_relative,
            Decimal::ZERO,
        )?,
    };
    let (statement, source) = crate::billing::member_statement(
        &state.store,
        entry.adapter.as_ref(),
        &request.member,
        &request.period,
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "statement.missing",
            "the member publishes no statement for this period; upload one first",
        )
    })?;
    let books = crate::billing::Books::from_registry(&state.members);
    let (ledger, usage) = crate::billing::ledger_focus(
        &state.store,
        period,
        &request.member,
        &books.catalogues,
        &books.names,
    )
    .await?;
    let (aliases, allowed) =
        crate::billing::reconciliation_context(&state.store, &request.member).await?;
    let ledger_rows = FocusReader::new(ledger.as_slice())
        .map_err(|e| ApiError::internal(format!("ledger: {e}")))?;
    let statement_rows = FocusReader::new(statement.as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "statement.invalid",
            format!("the member's statement is not valid FOCUS: {e}"),
        )
    })?;
    let outcome = reconcile(ledger_rows, statement_rows, tolerance, &aliases, &allowed).map_err(
        |(which, e)| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "statement.invalid",
                format!("{which}: {e}"),
            )
        },
    )?;
    let id = format!("rec-{}", uuid::Uuid::now_v7().simple());
    let mut notes = Vec::new();
    let unpriced: usize = usage.totals.iter().map(|t| t.unpriced_lines).sum();
    if unpriced > 0 {
        notes.push(format!(
            "{unpriced} ledger lines have no price in the member's catalogue and are rated at zero"
        ));
    }
    let report = serde_json::json!({
        "id": id,
        "period": request.period,
        "member": request.member,
        "status": outcome.status,
        "currency": outcome.currency,
        "statement_source": source.as_str(),
        "tolerance": { "absolute": tolerance.absolute.to_string(), "relative": tolerance.relative.to_string() },
        "ledger_rows": outcome.ledger_rows,
        "statement_rows": outcome.statement_rows,
        "totals": { "expected": outcome.totals.expected, "stated": outcome.totals.stated, "difference": outcome.totals.difference, "by_tenant": outcome.totals_by_tenant },
        "discrepancies": outcome.discrepancies,
        "notes": notes,
    });
    let by = format!("{}|{}", auth.principal.issuer, auth.principal.subject);
    state
        .store
        .insert_reconciliation(
            &id,
            &request.member,
            &request.period,
            &outcome.status,
            &report,
            &by,
            now_ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// A reconciliation report: billing, operators.
#[utoipa::path(get, path = "/v1/reconciliations/{id}", tag = "billing", params(("id" = String, Path)), responses((status = 200, description = "the report"), (status = 404, body = Problem)), security(("bearer" = [])))]
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
