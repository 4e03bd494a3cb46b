//! Tenancy: the tenants of the broker and their placement policies.
//!
//! A policy is checked here, once, against the config (its home among its allowed
//! jurisdictions, its default data class defined) before it is stored; every change commits
//! its audit event in the same transaction. The API parses the request's fields into a
//! [`TenantPolicy`]; this module never sees JSON.

use alliance_core::{DataClassName, Jurisdiction, TenantId, TenantPolicy};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::store::TenantRow;

/// A change to a tenant: only the fields present change.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// Display name.
    pub name: Option<String>,
    /// Home jurisdiction.
    pub home_jurisdiction: Option<Jurisdiction>,
    /// Allowed jurisdictions.
    pub allowed_jurisdictions: Option<std::collections::BTreeSet<Jurisdiction>>,
    /// Default data class.
    pub default_data_class: Option<DataClassName>,
    /// Billing currency.
    pub billing_currency: Option<alliance_core::rates::Currency>,
}

/// Refuses a policy the config cannot honour.
pub fn check_policy(state: &AppState, policy: TenantPolicy) -> ApiResult<TenantPolicy> {
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

/// Refuses a policy that would leave live resources of the tenant in a jurisdiction it no
/// longer allows: 409 `tenant.resources_outside_policy`, listing them. Nothing changes; the
/// operator moves or deletes them first.
async fn refuse_stranding(
    state: &AppState,
    scope: &crate::store::TenantScope,
    policy: &TenantPolicy,
) -> ApiResult<()> {
    let outside: Vec<serde_json::Value> = state
        .store
        .residency(scope)
        .await?
        .into_iter()
        .filter(|r| !policy.allowed_jurisdictions.contains(&r.jurisdiction))
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "resource_type": r.resource_type.as_str(),
                "jurisdiction": r.jurisdiction.as_str(),
                "member": r.member_id.as_str(),
            })
        })
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::TenantResourcesOutsidePolicy,
        format!(
            "{} of the tenant's resources live outside the new allowed jurisdictions; move or delete them first",
            outside.len()
        ),
    )
    .with_extensions(serde_json::json!({ "resources": outside })))
}

/// One tenant; 404 when unknown.
pub async fn get(state: &AppState, id: &TenantId) -> ApiResult<TenantRow> {
    state
        .store
        .tenant(id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", id.as_str()))
}

/// Creates a tenant; 409 when the id is taken. `details` go into the audit event.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    policy: TenantPolicy,
    name: &str,
    billing_currency: &alliance_core::rates::Currency,
    details: serde_json::Value,
) -> ApiResult<TenantRow> {
    let policy = check_policy(state, policy)?;
    let entry = principal.audit(
        "tenant.create",
        Some(policy.id.to_string()),
        Some(policy.id.to_string()),
        "succeeded",
        details,
    );
    if !state
        .store
        .insert_tenant(
            &policy,
            name,
            billing_currency,
            state.clock.now_ms(),
            Some(&entry),
        )
        .await?
    {
        return Err(ApiError::conflict(format!("tenant `{}` exists", policy.id)));
    }
    get(state, &policy.id).await
}

/// Changes a tenant; 404 when unknown. `details` go into the audit event.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: &TenantId,
    change: TenantChange,
    details: serde_json::Value,
) -> ApiResult<TenantRow> {
    let row = get(state, id).await?;
    let mut policy = row.policy.clone();
    if let Some(home) = change.home_jurisdiction {
        policy.home_jurisdiction = home;
    }
    if let Some(allowed) = change.allowed_jurisdictions {
        policy.allowed_jurisdictions = allowed;
    }
    if let Some(class) = change.default_data_class {
        policy.default_data_class = class;
    }
    let policy = check_policy(state, policy)?;
    refuse_stranding(state, &principal.scope_for(id)?, &policy).await?;
    let name = change.name.unwrap_or(row.name);
    let currency = change.billing_currency.unwrap_or(row.billing_currency);
    let entry = principal.audit(
        "tenant.update",
        Some(id.to_string()),
        Some(id.to_string()),
        "succeeded",
        details,
    );
    if !state
        .store
        .update_tenant(
            &policy,
            &name,
            &currency,
            state.clock.now_ms(),
            Some(&entry),
        )
        .await?
    {
        return Err(ApiError::not_found("tenant", id.as_str()));
    }
    get(state, id).await
}
