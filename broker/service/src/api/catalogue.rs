//! Members, tenants, residency, placement dry runs and the audit log.

use alliance_core::{
    DataClassName, Jurisdiction, MemberId, PlacementRequest, ResourceType, SizeName, TenantId,
    TenantPolicy,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::{field, StrictJson};
use crate::auth::permissions::{
    ManageTenants, ReadAudit, ReadMembers, ReadResidency, ReadResources,
};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult, Problem};
use crate::provisioning::views::{
    page, EvaluationView, MemberView, Page, PageParams, ResidencyView, TenantView,
};
use crate::provisioning::{self};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditEvent, AuditFilter};
use crate::time::{now_ms, parse_rfc3339};

/// `POST /v1/placement/evaluate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// `instance`, `volume` or `bucket`.
    pub resource_type: String,
    /// Your tenant's home when absent.
    pub jurisdiction: Option<String>,
    /// Your tenant's default when absent.
    pub data_class: Option<String>,
    /// Instance size.
    pub size: Option<String>,
    /// Pin a member.
    pub member: Option<String>,
}

/// Ask where a resource would go, and why, without creating it.
#[utoipa::path(post, path = "/v1/placement/evaluate", tag = "placement", request_body = EvaluateRequest,
    responses((status = 200, body = EvaluationView), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn evaluate(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    body: StrictJson<EvaluateRequest>,
) -> ApiResult<Json<EvaluationView>> {
    let b = &body.value;
    let request = PlacementRequest {
        resource_type: ResourceType::parse(&b.resource_type)
            .map_err(|e| ApiError::invalid_field(format!("`resource_type`: {e}")))?,
        jurisdiction: field(
            "jurisdiction",
            b.jurisdiction.as_deref(),
            Jurisdiction::parse,
        )?,
        data_class: field("data_class", b.data_class.as_deref(), DataClassName::parse)?,
        size: field("size", b.size.as_deref(), SizeName::parse)?,
        member: field("member", b.member.as_deref(), MemberId::parse)?,
    };
    let decision =
        provisioning::evaluate(&state, &auth.principal.tenant_scope()?, &request).await?;
    Ok(Json(EvaluationView::from(&decision)))
}

/// The API view of a member.
pub fn member_view(state: &AppState, entry: &crate::members::MemberEntry) -> MemberView {
    let id = entry.config.id.get_ref();
    let (status, health) = state.members.state_of(id);
    MemberView {
        id: id.to_string(),
        name: entry.config.name.clone(),
        jurisdictions: entry
            .config
            .jurisdictions
            .iter()
            .map(ToString::to_string)
            .collect(),
        certifications: entry
            .config
            .certifications
            .iter()
            .map(ToString::to_string)
            .collect(),
        services: entry
            .config
            .services
            .iter()
            .map(ToString::to_string)
            .collect(),
        status: status.as_str().to_owned(),
        health: health.as_str().to_owned(),
    }
}

/// The member clouds of the alliance.
#[utoipa::path(get, path = "/v1/members", tag = "members", params(PageParams), responses((status = 200, body = Page<MemberView>)), security(("bearer" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    auth: Authorized<ReadMembers>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<MemberView>>> {
    let (limit, after) = params.resolve("members")?;
    let only = auth.principal.partner_only().cloned();
    let rows: Vec<_> = state
        .members
        .all()
        .into_iter()
        .filter(|e| only.as_ref().is_none_or(|m| e.id() == m))
        .filter(|e| {
            after
                .as_deref()
                .is_none_or(|a| e.config.id.get_ref().as_str() > a)
        })
        .take(usize::try_from(limit + 1).unwrap_or(51))
        .collect();
    Ok(Json(page(
        rows,
        limit,
        "members",
        |e| e.config.id.get_ref().to_string(),
        |e| member_view(&state, e),
    )))
}

/// One member cloud.
#[utoipa::path(get, path = "/v1/members/{id}", tag = "members", params(("id" = String, Path)), responses((status = 200, body = MemberView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_member(
    State(state): State<AppState>,
    auth: Authorized<ReadMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    if auth
        .principal
        .partner_only()
        .is_some_and(|m| m.as_str() != id)
    {
        return Err(ApiError::not_found("member", &id));
    }
    let entry = state
        .members
        .get(&id)
        .ok_or_else(|| ApiError::not_found("member", &id))?;
    Ok(Json(member_view(&state, &entry)))
}

/// Where all of a tenant's data lives.
#[utoipa::path(get, path = "/v1/tenants/{id}/residency", tag = "tenants", params(("id" = String, Path)), responses((status = 200, body = ResidencyView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn residency(
    State(state): State<AppState>,
    auth: Authorized<ReadResidency>,
    Path(id): Path<String>,
) -> ApiResult<Json<ResidencyView>> {
    let tenant = TenantId::parse(&id).map_err(|_| ApiError::not_found("tenant", &id))?;
    let scope = auth.principal.scope_for(&tenant)?;
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found("tenant", &id));
    }
    let rows = state.store.residency(&scope).await?;
    Ok(Json(ResidencyView::build(&id, &rows)))
}

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
}

fn checked_policy(state: &AppState, policy: TenantPolicy) -> ApiResult<TenantPolicy> {
    if !policy
        .allowed_jurisdictions
        .contains(&policy.home_jurisdiction)
    {
        return Err(ApiError::invalid_field(
            "`home_jurisdiction` must be among `allowed_jurisdictions`",
        ));
    }
    if !state
        .config
        .data_classes
        .contains_key(&policy.default_data_class)
    {
        return Err(ApiError::invalid_field(format!(
            "`default_data_class`: `{}` is not defined",
            policy.default_data_class
        )));
    }
    Ok(policy)
}

fn jurisdictions(values: &[String]) -> ApiResult<std::collections::BTreeSet<Jurisdiction>> {
    values
        .iter()
        .map(|v| {
            Jurisdiction::parse(v)
                .map_err(|e| ApiError::invalid_field(format!("`allowed_jurisdictions`: {e}")))
        })
        .collect()
}

fn tenant_audit(
    auth: &crate::auth::Principal,
    headers: &axum::http::HeaderMap,
    action: &str,
    id: &str,
    details: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        actor: auth.subject.clone(),
        roles: auth.role_names(),
        tenant: Some(id.to_owned()),
        action: action.into(),
        resource_id: Some(id.to_owned()),
        outcome: "succeeded".into(),
        request_id: crate::provisioning::RequestFacts::from_headers(headers).request_id,
        details,
    }
}

/// Create a tenant (operator).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant, responses((status = 201, body = TenantView), (status = 409, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    headers: axum::http::HeaderMap,
    body: StrictJson<CreateTenant>,
) -> ApiResult<axum::response::Response> {
    let canonical = body.canonical.clone();
    let action = create_tenant_now(&state, &auth, &headers, body);
    crate::provisioning::with_idempotency_key(
        &state,
        &auth.principal,
        &headers,
        "/v1/tenants",
        &canonical,
        async {
            action
                .await
                .map(axum::response::IntoResponse::into_response)
        },
    )
    .await
}

async fn create_tenant_now(
    state: &AppState,
    auth: &Authorized<ManageTenants>,
    headers: &axum::http::HeaderMap,
    body: StrictJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let b = &body.value;
    let policy = checked_policy(
        state,
        TenantPolicy {
            id: TenantId::parse(&b.id)
                .map_err(|e| ApiError::invalid_field(format!("`id`: {e}")))?,
            home_jurisdiction: Jurisdiction::parse(&b.home_jurisdiction)
                .map_err(|e| ApiError::invalid_field(format!("`home_jurisdiction`: {e}")))?,
            allowed_jurisdictions: jurisdictions(&b.allowed_jurisdictions)?,
            default_data_class: field(
                "default_data_class",
                Some(b.default_data_class.as_deref().unwrap_or("standard")),
                DataClassName::parse,
            )?
            .ok_or_else(|| ApiError::invalid_field("`default_data_class`"))?,
        },
    )?;
    let name = super::json::name(&b.name)?;
    let entry = tenant_audit(
        &auth.principal,
        headers,
        "tenant.create",
        policy.id.as_str(),
        body.canonical.clone(),
    );
    if !state
        .store
        .insert_tenant(&policy, &name, now_ms(), Some(&entry))
        .await?
    {
        return Err(ApiError::conflict(format!("tenant `{}` exists", policy.id)));
    }
    let row = state
        .store
        .tenant(&policy.id)
        .await?
        .ok_or_else(|| ApiError::internal("tenant vanished"))?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&row))))
}

/// List tenants (operator).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageParams), responses((status = 200, body = Page<TenantView>)), security(("bearer" = [])))]
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
    let tenant = TenantId::parse(&id).map_err(|_| ApiError::not_found("tenant", &id))?;
    let row = state
        .store
        .tenant(&tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", &id))?;
    Ok(Json(TenantView::from(&row)))
}

/// Change a tenant (operator).
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = String, Path)), request_body = UpdateTenant, responses((status = 200, body = TenantView), (status = 404, body = Problem), (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn update_tenant(
    State(state): State<AppState>,
    auth: Authorized<ManageTenants>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: StrictJson<UpdateTenant>,
) -> ApiResult<Json<TenantView>> {
    let tenant = TenantId::parse(&id).map_err(|_| ApiError::not_found("tenant", &id))?;
    let row = state
        .store
        .tenant(&tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", &id))?;
    let b = &body.value;
    let mut policy = row.policy.clone();
    if let Some(home) = field(
        "home_jurisdiction",
        b.home_jurisdiction.as_deref(),
        Jurisdiction::parse,
    )? {
        policy.home_jurisdiction = home;
    }
    if let Some(allowed) = &b.allowed_jurisdictions {
        policy.allowed_jurisdictions = jurisdictions(allowed)?;
    }
    if let Some(class) = field(
        "default_data_class",
        b.default_data_class.as_deref(),
        DataClassName::parse,
    )? {
        policy.default_data_class = class;
    }
    let policy = checked_policy(&state, policy)?;
    let name = match &b.name {
        Some(n) => super::json::name(n)?,
        None => row.name.clone(),
    };
    let entry = tenant_audit(
        &auth.principal,
        &headers,
        "tenant.update",
        &id,
        body.canonical.clone(),
    );
    if !state
        .store
        .update_tenant(&policy, &name, now_ms(), Some(&entry))
        .await?
    {
        return Err(ApiError::not_found("tenant", &id));
    }
    let row = state
        .store
        .tenant(&tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", &id))?;
    Ok(Json(TenantView::from(&row)))
}

/// `GET /v1/audit` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this resource.
    pub resource: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before (RFC 3339).
    pub to: Option<String>,
    /// 1 to 500.
    pub limit: Option<String>,
    /// From the previous page.
    pub page_token: Option<String>,
}

/// The audit log, hash-chained (operator).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams), responses((status = 200, body = Page<Object>)), security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    _auth: Authorized<ReadAudit>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    let paging = PageParams {
        limit: params.limit.clone(),
        page_token: params.page_token.clone(),
    };
    let (limit, after) = paging.resolve("audit")?;
    let after: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
    let time = |name: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|t| {
                parse_rfc3339(t).ok_or_else(|| {
                    ApiError::invalid_query(format!("`{name}` is not an RFC 3339 time"))
                })
            })
            .transpose()
    };
    let filter = AuditFilter {
        tenant: params.tenant.clone(),
        resource_id: params.resource.clone(),
        from: time("from", &params.from)?,
        to: time("to", &params.to)?,
    };
    let rows = state.store.audit_events(&filter, after, limit + 1).await?;
    Ok(Json(page(
        rows,
        limit,
        "audit",
        |e| e.seq.to_string(),
        Clone::clone,
    )))
}
