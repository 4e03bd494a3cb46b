//! The console's pages. Each handler turns its visitor into a permission with
//! [`Authorized::grant`] and calls the services the API calls.

use std::collections::BTreeMap;

use alliance_core::ResourceType;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect};
use axum::Json;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::map::{self, Country};
use super::{PageError, PageResult, Visitor};
use crate::api::views::{EvaluationView, ResidencyView, ResourceView};
use crate::auth::permissions::{ReadResidency, ReadResources};
use crate::auth::{Authorized, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// The page frame: header with who is signed in, navigation by role, the body.
pub(super) fn layout(title: &str, visitor: Option<&Visitor>, body: Markup) -> Html<String> {
    let has = |role: Role| visitor.is_some_and(|v| v.principal.has(role));
    let tenant_role = has(Role::TenantAdmin) || has(Role::TenantUser);
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · alliance" }
                    link rel="stylesheet" href="/console/static/console.css";
                    script src="/console/static/console.js" defer {}
                }
                body {
                    header {
                        a class="brand" href="/console" { "alliance" }
                        @if let Some(v) = visitor {
                            nav aria-label="main" {
                                @if tenant_role {
                                    a href="/console" { "Map" }
                                    a href="/console/resources" { "Resources" }
                                    @if has(Role::TenantAdmin) { a href="/console/new" { "New" } }
                                    a href="/console/ssh-keys" { "SSH keys" }
                                }
                                @if has(Role::Operator) {
                                    a href="/console/members" { "Members" }
                                    a href="/console/applications" { "Applications" }
                                    a href="/console/tenants" { "Tenants" }
                                    a href="/console/audit" { "Audit" }
                                }
                                @if has(Role::Operator) || has(Role::Billing) { a href="/console/reconciliations" { "Books" } }
                            }
                            form class="who" method="post" action="/console/logout" {
                                span { (v.principal.subject) @if let Some(t) = &v.principal.tenant { " · " (t.as_str()) } }
                                input type="hidden" name="csrf" value=(v.session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main { h1 { (title) } (body) }
                }
            }
        }
        .into_string(),
    )
}

/// An error page.
pub fn error_page(status: u16, code: &str, detail: &str) -> String {
    layout(
        &format!("{status}"),
        None,
        html! { p class="error" data-code=(code) { (detail) } p { a href="/console" { "Back" } } },
    )
    .0
}

/// `/console`: the map for a tenant, the members for an operator.
pub async fn home(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    let principal = &visitor.principal;
    let Some(tenant) = principal
        .tenant
        .clone()
        .filter(|_| principal.roles.iter().any(Role::is_tenant_role))
    else {
        if principal.has(Role::Operator) {
            return Ok(Redirect::to("/console/members").into_response());
        }
        if principal.has(Role::Billing) {
            return Ok(Redirect::to("/console/reconciliations").into_response());
        }
        return Ok(layout(
            "Welcome",
            Some(&visitor),
            html! { p { "Nothing to show for your roles yet." } },
        )
        .into_response());
    };
    let granted = Authorized::<ReadResidency>::grant(principal.clone())?;
    let scope = granted.principal.scope_for(&tenant)?;
    let row = crate::tenancy::get(&state, &tenant).await?;
    let rows = state.store.residency(&scope).await?;
    let compliance = crate::compliance::Compliance::new(&state, &row.policy);
    let residency = ResidencyView::build(tenant.as_str(), &rows, |r| compliance.of_residency(r));
    let mut countries: BTreeMap<String, Country> = BTreeMap::new();
    for j in &row.policy.allowed_jurisdictions {
        countries.entry(j.to_string()).or_default().allowed = true;
    }
    for entry in state.members.all() {
        for j in &entry.config.jurisdictions {
            countries
                .entry(j.to_string())
                .or_default()
                .members
                .push(entry.config.id.get_ref().to_string());
        }
    }
    for (j, r) in &residency.by_jurisdiction {
        let c = countries.entry(j.clone()).or_default();
        c.counts.insert("instance", r.instance);
        c.counts.insert("volume", r.volume);
        c.counts.insert("bucket", r.bucket);
    }
    let usage = super::usable::usage_by_country(&state, &visitor).await?;
    let body = html! {
        (map::render(&countries))
        p class="legend" { span class="key held" {} "your data" span class="key allowed" {} "allowed, empty" span class="key" {} "not allowed" }
        table class="residency" {
            thead { tr { th { "Country" } th { "Instances" } th { "Volumes" } th { "Buckets" } th { "Members" } } }
            tbody {
                @for (j, r) in &residency.by_jurisdiction {
                    tr data-jurisdiction=(j) { td { (j) } td { (r.instance) } td { (r.volume) } td { (r.bucket) } td { (r.members.join(", ")) } }
                }
            }
        }
        h2 { "Members by country" }
        table class="member-countries" {
            thead { tr { th { "Country" } th { "Members" } th { "Your policy" } } }
            tbody {
                @for (j, c) in countries.iter().filter(|(_, c)| !c.members.is_empty()) {
                    tr data-jurisdiction=(j) { td { (j) } td { (c.members.join(", ")) } td { @if c.allowed { "allowed" } @else { "not allowed" } } }
                }
            }
        }
        (usage)
        @if residency.outside_policy > 0 {
            p class="warning" { (residency.outside_policy) " resources are outside your policy now: see their pages." }
        }
    };
    Ok(layout(
        &format!("Where {}'s data lives", row.name),
        Some(&visitor),
        body,
    )
    .into_response())
}

/// `/console/resources` filters.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    country: Option<String>,
    member: Option<String>,
    status: Option<String>,
}

fn some(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

async fn all_resources(
    state: &AppState,
    visitor: &Visitor,
) -> Result<Vec<ResourceView>, PageError> {
    let granted = Authorized::<ReadResources>::grant(visitor.principal.clone())?;
    let scope = granted.principal.tenant_scope()?;
    let compliance = crate::compliance::Compliance::members_only(state);
    let mut out = Vec::new();
    for resource_type in [
        ResourceType::Instance,
        ResourceType::Volume,
        ResourceType::Bucket,
    ] {
        let mut after: Option<String> = None;
        loop {
            let rows = state
                .store
                .resources(&scope, resource_type, after.as_deref(), 500)
                .await?;
            let done = rows.len() < 500;
            after = rows.last().map(|r| r.id.clone());
            out.extend(
                rows.iter()
                    .map(|r| ResourceView::from(r).with_compliance(compliance.of_resource(r))),
            );
            if done {
                break;
            }
        }
    }
    Ok(out)
}

/// `/console/resources`: the tenant's resources, filtered by type, country, member, status.
pub async fn resources(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(filters): Query<Filters>,
) -> PageResult {
    let all = all_resources(&state, &visitor).await?;
    let options = |f: fn(&ResourceView) -> &str| -> Vec<String> {
        let mut v: Vec<String> = all.iter().map(|r| f(r).to_owned()).collect();
        v.sort();
        v.dedup();
        v
    };
    let (types, countries, members, statuses) = (
        options(|r| &r.resource_type),
        options(|r| &r.jurisdiction),
        options(|r| &r.member),
        options(|r| &r.status),
    );
    let keep = |r: &&ResourceView| {
        some(&filters.resource_type).is_none_or(|t| r.resource_type == t)
            && some(&filters.country).is_none_or(|c| r.jurisdiction == c)
            && some(&filters.member).is_none_or(|m| r.member == m)
            && some(&filters.status).is_none_or(|s| r.status == s)
    };
    let shown: Vec<&ResourceView> = all.iter().filter(keep).collect();
    let select = |name: &str, label: &str, values: &[String], chosen: Option<&str>| {
        html! {
            label { (label) " "
                select name=(name) data-autosubmit {
                    option value="" { "any" }
                    @for v in values { option value=(v) selected[chosen == Some(v.as_str())] { (v) } }
                }
            }
        }
    };
    let body = html! {
        form method="get" action="/console/resources" class="filters" {
            (select("type", "Type", &types, some(&filters.resource_type)))
            (select("country", "Country", &countries, some(&filters.country)))
            (select("member", "Member", &members, some(&filters.member)))
            (select("status", "Status", &statuses, some(&filters.status)))
            button type="submit" { "Filter" }
        }
        table class="resources" {
            thead { tr { th { "Name" } th { "Type" } th { "Country" } th { "Member" } th { "Status" } th { "Compliance" } } }
            tbody {
                @for r in &shown {
                    tr data-id=(r.id) {
                        td { a href={ "/console/resources/" (r.id) } { (r.name) } }
                        td { (r.resource_type) } td { (r.jurisdiction) } td { (r.member) }
                        td class={ "status " (r.status) } { (r.status) } td { (r.compliance) }
                    }
                }
            }
        }
        p class="count" { (shown.len()) " of " (all.len()) " resources" }
    };
    Ok(layout("Resources", Some(&visitor), body).into_response())
}

fn type_of(id: &str) -> Option<ResourceType> {
    [
        ResourceType::Instance,
        ResourceType::Volume,
        ResourceType::Bucket,
    ]
    .into_iter()
    .find(|t| id.starts_with(&format!("{}-", crate::provisioning::id_prefix(*t))))
}

/// `/console/resources/{id}`: a resource, why it is where it is, and why not elsewhere.
pub async fn resource(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let granted = Authorized::<ReadResources>::grant(visitor.principal.clone())?;
    let scope = granted.principal.tenant_scope()?;
    let not_found = || PageError(ApiError::not_found("resource", &id));
    let resource_type = type_of(&id).ok_or_else(not_found)?;
    let row = state
        .store
        .resource(&scope, resource_type, &id)
        .await?
        .ok_or_else(not_found)?;
    let compliance = crate::compliance::Compliance::members_only(&state);
    let view = ResourceView::from(&row).with_compliance(compliance.of_resource(&row));
    let request = alliance_core::PlacementRequest {
        resource_type,
        jurisdiction: Some(row.jurisdiction),
        data_class: Some(row.data_class.clone()),
        size: row.shape.size.clone(),
        member: None,
        needs: Default::default(),
    };
    let mut sizes: Vec<String> = state
        .members
        .known_sizes()
        .iter()
        .map(ToString::to_string)
        .collect();
    sizes.sort();
    let now = crate::provisioning::evaluate(&state, &scope, &request)
        .await
        .ok()
        .map(|d| EvaluationView::from(&d));
    let body = html! {
        dl class="facts" {
            dt { "Type" } dd { (view.resource_type) }
            dt { "Country" } dd data-field="jurisdiction" { (view.jurisdiction) }
            dt { "Member" } dd data-field="member" { (view.member) }
            dt { "Status" } dd data-field="status" { (view.status) }
            dt { "Data class" } dd { (view.data_class) }
            dt { "Compliance" } dd data-field="compliance" { (view.compliance) @for r in &view.compliance_reasons { br; (r) } }
            @if let Some(e) = &view.endpoint { dt { "Endpoint" } dd { (e) } }
            @if let Some(p) = &view.power_state { dt { "Power" } dd data-field="power" { (p) } }
            @if let Some(a) = &view.addresses { dt { "Addresses" } dd { (a.private.join(", ")) " " (a.public.join(", ")) } }
            dt { "Created" } dd { (view.created_at) }
        }
        (super::usable::resource_forms(&visitor, &view, &sizes))
        h2 { "Why here" }
        ol class="reasons" data-field="placement" { @for r in &view.placement.reasons { li { (r) } } }
        @if let Some(now) = &now {
            h2 { "Why not there (as placement would judge it now)" }
            table class="candidates" {
                thead { tr { th { "Member" } th { "Eligible" } th { "Reasons" } } }
                tbody { @for c in &now.candidates { tr data-member=(c.member) { td { (c.member) } td { @if c.eligible { "yes" } @else { "no" } } td { (c.reasons.join("; ")) } } } }
            }
        }
    };
    Ok(layout(&view.name, Some(&visitor), body).into_response())
}

/// `/console/operations/{id}`: an operation, its status kept current by `console.js`.
pub async fn operation(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let view = operation_view(&state, &visitor, &id).await?;
    let body = html! {
        dl class="facts" {
            dt { "Kind" } dd { (view.kind) }
            dt { "Resource" } dd { a href={ "/console/resources/" (view.resource_id) } { (view.resource_id) } }
            dt { "Status" } dd id="operation-status" data-operation=(view.id) data-status=(view.status) aria-live="polite" { (view.status) }
        }
    };
    Ok(layout("Operation", Some(&visitor), body).into_response())
}

async fn operation_view(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
) -> Result<crate::api::views::OperationView, PageError> {
    let granted = Authorized::<ReadResources>::grant(visitor.principal.clone())?;
    let scope = granted.principal.tenant_scope()?;
    let op = state
        .store
        .operation(&scope, id)
        .await?
        .ok_or_else(|| PageError(ApiError::not_found("operation", id)))?;
    Ok(crate::api::views::OperationView::from(&op))
}

/// `/console/operations/{id}/status`: what `console.js` polls.
pub async fn operation_status(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let view = operation_view(&state, &visitor, &id).await?;
    Ok(Json(serde_json::json!({ "id": view.id, "status": view.status })).into_response())
}
