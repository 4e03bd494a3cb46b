//! Tenant routes: the tenants themselves (operator) and where a tenant's data lives.
//!
//! Handlers parse the body's fields into the core's types and call `tenancy`, which checks
//! the policy and commits the change with its audit event.

use std::collections::BTreeSet;

use alliance_core::{DataClassName, Jurisdiction, TenantId, TenantPolicy};
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::{field, name, StrictJson};
use super::problem::idempotent;
use super::views::{page, Page, PageParams, ResidencyView, TenantView};
use crate::auth::permissions::{ManageTenants, ReadResidency};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult, Problem};
use crate::idempotency::{json_reply, RequestFacts};
use crate::state::AppState;
use crate::tenancy::{self, TenantChange};

/// `POST /v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Slug id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Home jurisdiction.
    pub home_jurisdiction: String,
    /// Allowed jurisdictions (must include home).
    pub allowed_jurisdictions: Vec<String>,
    /// Default data class; `standard` when absent.
    pub default_data_class: Option<String>,
    /// What its invoices are in (ISO 4217); `EUR` when absent.
    pub billing_currency: Option<String>,
}

/// `PATCH /v1/tenants/{id}`: every field optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Display name.
    pub name: Option<String>,
    /// Home jurisdiction.
    pub home_jurisdiction: Option<String>,
    /// Allowed jurisdictions.
    pub allowed_jurisdictions: Option<Vec<String>>,
    /// Default data class.
    pub default_data_class: Option<String>,
    /// Billing currency (ISO 4217).
    pub billing_currency: Option<String>,
}

fn currency(value: &str) -> ApiResult<alliance_core::rates::Currency> {
    alliance_core::rates::Currency::parse(value)
        .map_err(|e| ApiError::invalid_field(format!("`billing_currency`: {e}")))
}

fn jurisdictions(values: &[String]) -> ApiResult<BTreeSet<Jurisdiction>> {
    values
        .iter()
        .map(|v| {
            Jurisdiction::parse(v)
                .map_err(|e| ApiError::invalid_field(format!("`allowed_jurisdictions`: {e}")))
        })
        .collect()
}

/// A tenant id from a path: one that cannot be a tenant is unknown.
fn tenant_id(id: &str) -> ApiResult<TenantId> {
    TenantId::parse(id).map_err(|_| ApiError::not_found("tenant", id))
}

fn policy_of(b: &CreateTenant) -> ApiResult<TenantPolicy> {
    Ok(TenantPolicy {
        id: TenantId::parse(&b.id).map_err(|e| ApiError::invalid_field(format!("`id`: {e}")))?,
        home_jurisdiction: Jurisdiction::parse(&b.home_jurisdiction)
            .map_err(|e| ApiError::invalid_field(format!("`home_jurisdiction`: {e}")))?,
        allowed_jurisdictions: jurisdictions(&b.allowed_jurisdictions)?,
        default_data_class: DataClassName::parse(
            b.default_data_class.as_deref().unwrap_or("standard"),
        )
        .map_err(|e| ApiError::invalid_field(format!("`default_data_class`: {e}")))?,
    })
}

/// Where all of a tenant's data lives.
#[utoipa::path(get, path = "/v1/tenants/{id}/residency", tag = "tenants", params(("id" = String, Path)), responses((status = 200, body = ResidencyView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn residency(
    State(state): State<AppState>,
    auth: Authorized<ReadResidency>,
    Path(id): Path<String>,
) -> ApiResult<Json<ResidencyView>> {
    let tenant = tenant_id(&id)?;
    let scope = auth.principal.scope_for(&tenant)?;
    let row = tenancy::get(&state, &tenant).await?;
    let rows = state.store.residency(&scope).await?;
    let compliance = crate::compliance::Compliance::new(&state, &row.policy);
    Ok(Json(ResidencyView::build(&id, &rows, |r| {
        compliance.of_residency(r)
    })))
}

/// Create a tenant (operator).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, body = TenantView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<CreateTenant>,
) -> ApiResult<Response> {
    let action = async {
        let policy = policy_of(&body.value)?;
        let name = name(&body.value.name)?;
        let billing_currency = currency(body.value.billing_currency.as_deref().unwrap_or("EUR"))?;
        let row = tenancy::create(
            &state,
            &auth.principal,
            policy,
            &name,
            &billing_currency,
            body.canonical.clone(),
        )
        .await?;
        json_reply(201, None, &TenantView::from(&row))
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

/// List tenants (operator).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageParams), responses((status = 200, body = Page<TenantView>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    _auth: Authorized<ManageTenants>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<TenantView>>> {
    let (limit, after) = params.resolve("tenants")?;
    let rows = state.store.tenants(after.as_deref(), limit + 1).await?;
    Ok(Json(page(
        rows,
        limit,
        "tenants",
        |t| t.policy.id.to_string(),
        |t| TenantView::from(t),
    )))
}

/// One tenant (operator).
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = String, Path)), responses((status = 200, body = TenantView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    _auth: Authorized<ManageTenants>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantView>> {
    let row = tenancy::get(&state, &tenant_id(&id)?).await?;
    Ok(Json(TenantView::from(&row)))
}

/// Change a tenant (operator).
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = String, Path)), request_body = UpdateTenant, responses((status = 200, body = TenantView), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    Path(id): Path<String>,
    body: StrictJson<UpdateTenant>,
) -> ApiResult<Json<TenantView>> {
    let tenant = tenant_id(&id)?;
    let b = &body.value;
    let change = TenantChange {
        name: b.name.as_deref().map(name).transpose()?,
        home_jurisdiction: field(
            "home_jurisdiction",
            b.home_jurisdiction.as_deref(),
            Jurisdiction::parse,
        )?,
        allowed_jurisdictions: b
            .allowed_jurisdictions
            .as_deref()
            .map(jurisdictions)
            .transpose()?,
        default_data_class: field(
            "default_data_class",
            b.default_data_class.as_deref(),
            DataClassName::parse,
        )?,
        billing_currency: b.billing_currency.as_deref().map(currency).transpose()?,
    };
    let row = tenancy::update(
        &state,
        &auth.principal,
        &tenant,
        change,
        body.canonical.clone(),
    )
    .await?;
    Ok(Json(TenantView::from(&row)))
}
