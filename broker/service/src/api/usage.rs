//! Usage routes: JSON and FOCUS CSV.

use alliance_core::billing::Period;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::ApiQuery;
use crate::auth::permissions::ReadUsage;
use crate::auth::{Authorized, Principal};
use crate::billing::Usage;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// `?period=YYYY-MM&tenant=&member=&format=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// `YYYY-MM` (UTC month).
    pub period: String,
    /// One tenant (tenants always see only their own).
    pub tenant: Option<String>,
    /// One member.
    pub member: Option<String>,
    /// `focus` (CSV, default) or `json`, for the export.
    pub format: Option<String>,
}

async fn compute(
    state: &AppState,
    principal: &Principal,
    params: &UsageParams,
) -> ApiResult<Usage> {
    let period =
        Period::parse(&params.period).map_err(|e| ApiError::invalid_query(e.to_string()))?;
    // Tenant roles see their own tenant, whatever they ask; anyone else may filter.
    let tenant = match (
        &principal.tenant,
        principal.has(crate::auth::Role::Billing) || principal.has(crate::auth::Role::Operator),
    ) {
        (Some(own), false) => {
            if params.tenant.as_deref().is_some_and(|t| t != own.as_str()) {
                return Err(ApiError::not_found(
                    "tenant",
                    params.tenant.as_deref().unwrap_or_default(),
                ));
            }
            Some(own.to_string())
        }
        _ => params.tenant.clone(),
    };
    let books = crate::billing::Books::from_registry(&state.members);
    Ok(crate::billing::usage(
        &state.store,
        period,
        tenant.as_deref(),
        params.member.as_deref(),
        &books.catalogues,
        state.clock.now_ms(),
    )
    .await?)
}

/// Metered and rated usage of a period, as JSON.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageParams), responses((status = 200, body = Usage), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    auth: Authorized<ReadUsage>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<Usage>> {
    Ok(Json(compute(&state, &auth.principal, &params).await?))
}

/// Usage of a period as FOCUS 1.2 CSV (or JSON with `format=json`).
#[utoipa::path(get, path = "/v1/usage/export", tag = "usage", params(UsageParams), responses((status = 200, description = "FOCUS CSV", content_type = "text/csv"), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    auth: Authorized<ReadUsage>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Response> {
    let usage = compute(&state, &auth.principal, &params).await?;
    match params.format.as_deref().unwrap_or("focus") {
        "json" => Ok(Json(usage).into_response()),
        "focus" => {
            let period = Period::parse(&usage.period).map_err(ApiError::internal)?;
            let names = crate::billing::Books::from_registry(&state.members).names;
            let mut out = Vec::new();
            alliance_core::focus::write(&mut out, period, &usage.lines, &names)
                .map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        other => Err(ApiError::invalid_query(format!(
            "format `{other}`: use focus or json"
        ))),
    }
}

/// `?period=YYYY-MM&tenant=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceParams {
    /// `YYYY-MM` (UTC month).
    pub period: String,
    /// The tenant: a tenant's own by default; required for billing and operators.
    pub tenant: Option<String>,
}

/// A tenant's invoice for a month, in its billing currency: lines by member,
/// jurisdiction and SKU, each also in the member's currency, with the reference rates used.
#[utoipa::path(get, path = "/v1/invoices", tag = "usage", params(InvoiceParams),
    responses((status = 200, description = "the invoice: tenant, period, currency, lines, subtotals_by_jurisdiction, total, rates", content_type = "application/json"),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn invoice(
    State(state): State<AppState>,
    auth: Authorized<ReadUsage>,
    ApiQuery(params): ApiQuery<InvoiceParams>,
) -> ApiResult<Response> {
    let period =
        Period::parse(&params.period).map_err(|e| ApiError::invalid_query(e.to_string()))?;
    let principal = &auth.principal;
    let books_reader =
        principal.has(crate::auth::Role::Billing) || principal.has(crate::auth::Role::Operator);
    let tenant = match (&principal.tenant, books_reader, params.tenant.as_deref()) {
        (Some(own), false, Some(asked)) if asked != own.as_str() => {
            return Err(ApiError::not_found("tenant", asked))
        }
        (Some(own), false, _) => own.to_string(),
        (_, _, Some(asked)) => asked.to_owned(),
        (_, _, None) => {
            return Err(ApiError::invalid_query(
                "`tenant` is required: name the tenant to invoice",
            ))
        }
    };
    let id = alliance_core::TenantId::parse(&tenant)
        .map_err(|_| ApiError::not_found("tenant", &tenant))?;
    let row = crate::tenancy::get(&state, &id).await?;
    let books = crate::billing::Books::from_registry(&state.members);
    let invoice = crate::invoicing::tenant_invoice(
        &state.store,
        &books,
        state.config.billing.rates.as_deref(),
        &row,
        period,
        state.clock.now_ms(),
    )
    .await?;
    Ok(Json(invoice).into_response())
}
