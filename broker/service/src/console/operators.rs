//! The operator's pages: members with status and health, and their lifecycle actions
//! behind a confirmation.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::pages::layout;
use super::signin::check_csrf;
use super::{json_text as text_of, PageError, PageResult, Visitor};
use crate::auth::permissions::{ManageMembers, ReadMembers};
use crate::auth::Authorized;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// `/console/members`: members with status and health, and their lifecycle actions.
pub async fn members(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    Authorized::<ManageMembers>::grant(visitor.principal.clone())?;
    Authorized::<ReadMembers>::grant(visitor.principal.clone())?;
    let views: Vec<crate::api::views::MemberView> = state
        .members
        .all()
        .iter()
        .map(|e| crate::api::catalogue::member_view(&state, e))
        .collect();
    let body = html! {
        table class="members" {
            thead { tr { th { "Member" } th { "Countries" } th { "Certifications" } th { "Status" } th { "Health" } th { "Breaker" } th { "Actions" } } }
            tbody {
                @for m in &views {
                    tr data-member=(m.id) {
                        td { (m.name) br; small { (m.id) } }
                        td { (m.jurisdictions.join(", ")) } td { (m.certifications.join(", ")) }
                        td class={ "status " (m.status) } data-field="status" { (m.status) } td data-field="health" { (m.health) }
                        td data-field="breaker" { (state.members.get(&m.id).and_then(|e| e.adapter.breaker_state()).unwrap_or("-")) }
                        td { @for action in ["suspend", "resume", "drain", "retire"] { a class="action" href={ "/console/members/" (m.id) "/confirm?action=" (action) } { (action) } " " } }
                    }
                }
            }
        }
    };
    Ok(layout("Members", Some(&visitor), body).into_response())
}

/// The lifecycle action asked for.
#[derive(Debug, Deserialize)]
pub struct Action {
    action: String,
}

fn lifecycle_of(action: &str) -> Result<crate::partners::Lifecycle, PageError> {
    use crate::partners::Lifecycle;
    Ok(match action {
        "suspend" => Lifecycle::Suspend,
        "resume" => Lifecycle::Resume,
        "drain" => Lifecycle::Drain,
        "retire" => Lifecycle::Retire,
        other => {
            return Err(PageError(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`{other}` is not a lifecycle action"),
            )))
        }
    })
}

/// `GET /console/members/{id}/confirm?action=…`: the confirmation before the action.
pub async fn confirm_lifecycle(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(q): Query<Action>,
) -> PageResult {
    Authorized::<ManageMembers>::grant(visitor.principal.clone())?;
    lifecycle_of(&q.action)?;
    if state.members.get(&id).is_none() {
        return Err(PageError(ApiError::not_found("member", &id)));
    }
    let body = html! {
        p { "Really " strong { (q.action) } " member " strong { (id) } "?" }
        form method="post" action={ "/console/members/" (id) "/lifecycle" } {
            input type="hidden" name="csrf" value=(visitor.session.csrf);
            input type="hidden" name="action" value=(q.action);
            button type="submit" class="danger" { "Yes, " (q.action) }
            " " a href="/console/members" { "Cancel" }
        }
    };
    Ok(layout("Confirm", Some(&visitor), body).into_response())
}

/// The lifecycle form.
#[derive(Debug, Deserialize)]
pub struct LifecycleForm {
    csrf: String,
    action: String,
}

/// `POST /console/members/{id}/lifecycle`: the same transition as the API's.
pub async fn lifecycle(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<LifecycleForm>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ManageMembers>::grant(visitor.principal.clone())?;
    crate::partners::transition(&state, &granted.principal, &id, lifecycle_of(&form.action)?)
        .await?;
    Ok(Redirect::to("/console/members").into_response())
}

/// `/console/applications`: partner applications waiting, running or failed.
pub async fn applications(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    Authorized::<ManageMembers>::grant(visitor.principal.clone())?;
    use alliance_core::ApplicationStatus::*;
    let mut rows = Vec::new();
    for status in [AwaitingApproval, ConformanceRunning, ConformanceFailed] {
        rows.extend(state.store.applications_in(status).await?);
    }
    let body = html! {
        table class="applications" {
            thead { tr { th { "Application" } th { "Member id" } th { "Name" } th { "Status" } th { "Conformance" } } }
            tbody {
                @for a in &rows {
                    tr data-application=(a.id) data-member=(a.member_id) {
                        td { a href={ "/console/applications/" (a.id) } { (a.id) } }
                        td { (a.member_id) } td { (text_of(&a.description["name"])) }
                        td class={ "status " (a.status.as_str()) } { (a.status.as_str()) }
                        td { @if let Some(c) = &a.conformance { (text_of(&c["report"]["passed"])) " passed, " (text_of(&c["report"]["failed"])) " failed" } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="5" { "No application is waiting." } } }
            }
        }
    };
    Ok(layout("Partner applications", Some(&visitor), body).into_response())
}

/// `/console/applications/{id}`: one application, its conformance report, and the
/// decision.
pub async fn application(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    Authorized::<ManageMembers>::grant(visitor.principal.clone())?;
    let a = crate::partners::lifecycle::application(&state, &id).await?;
    let checks = a
        .conformance
        .as_ref()
        .and_then(|c| c["report"]["checks"].as_array().cloned())
        .unwrap_or_default();
    let d = &a.description;
    let body = html! {
        dl class="facts" {
            dt { "Member id" } dd { (a.member_id) }
            dt { "Name" } dd { (text_of(&d["name"])) }
            dt { "Countries" } dd { (text_of(&d["jurisdictions"])) }
            dt { "Certifications" } dd { (text_of(&d["certifications"])) }
            dt { "Status" } dd data-field="status" { (a.status.as_str()) }
            @if let Some(r) = &a.reason { dt { "Reason" } dd { (r) } }
        }
        h2 { "Conformance" }
        table class="checks" {
            thead { tr { th { "Check" } th { "Service" } th { "Outcome" } } }
            tbody {
                @for c in &checks {
                    @let outcome = c.as_object().map(|o| o.iter().filter(|(k, _)| !["name", "service", "millis"].contains(&k.as_str())).map(|(k, v)| format!("{k}: {}", text_of(v))).collect::<Vec<_>>().join("; ")).unwrap_or_default();
                    tr { td { (text_of(&c["name"])) } td { (text_of(&c["service"])) } td { (outcome) } }
                }
            }
        }
        @if a.status == alliance_core::ApplicationStatus::AwaitingApproval {
            form method="post" action={ "/console/applications/" (a.id) "/decision" } class="stack" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                label { "Reason (when rejecting) " input type="text" name="reason" maxlength="500"; }
                div { button type="submit" name="decision" value="approve" { "Approve" } " "
                      button type="submit" name="decision" value="reject" class="danger" { "Reject" } }
            }
        }
    };
    Ok(layout("Partner application", Some(&visitor), body).into_response())
}

/// The decision form.
#[derive(Debug, Deserialize)]
pub struct Decision {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/applications/{id}/decision`: the API's approve or reject.
pub async fn decide(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<Decision>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ManageMembers>::grant(visitor.principal.clone())?;
    match form.decision.as_str() {
        "approve" => {
            crate::partners::approve(&state, &granted.principal, &id).await?;
        }
        "reject" => {
            let reason = match form.reason.trim() {
                "" => None,
                r => Some(crate::api::json::text("reason", r, 500)?),
            };
            crate::partners::reject(&state, &granted.principal, &id, reason.as_deref()).await?;
        }
        other => {
            return Err(PageError(ApiError::invalid_field(format!(
                "`decision`: `{other}` is neither approve nor reject"
            ))))
        }
    }
    Ok(Redirect::to(&format!("/console/applications/{id}")).into_response())
}

/// `/console/tenants`: every tenant with its policy.
pub async fn tenants(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    Authorized::<crate::auth::permissions::ManageTenants>::grant(visitor.principal.clone())?;
    let rows = state.store.tenants(None, 500).await?;
    let body = html! {
        table class="tenants" {
            thead { tr { th { "Tenant" } th { "Name" } th { "Home" } th { "Allowed" } th { "Data class" } th { "Billing currency" } } }
            tbody {
                @for t in &rows {
                    tr data-tenant=(t.policy.id.as_str()) {
                        td { (t.policy.id.as_str()) } td { (t.name) } td { (t.policy.home_jurisdiction.as_str()) }
                        td data-field="allowed" { (t.policy.allowed_jurisdictions.iter().map(|j| j.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (t.policy.default_data_class.as_str()) } td { (t.billing_currency.as_str()) }
                    }
                }
            }
        }
    };
    Ok(layout("Tenants", Some(&visitor), body).into_response())
}

/// `/console/audit` filters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditFilters {
    tenant: Option<String>,
    resource: Option<String>,
    verify: Option<String>,
}

/// `/console/audit`: the newest events (filtered by tenant or resource), and the chain
/// checked against its signed checkpoints, as `alliance audit verify` checks it.
pub async fn audit(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(f): Query<AuditFilters>,
) -> PageResult {
    Authorized::<crate::auth::permissions::ReadAudit>::grant(visitor.principal.clone())?;
    let keep = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let filter = crate::store::AuditFilter {
        tenant: keep(&f.tenant),
        resource_id: keep(&f.resource),
        from: None,
        to: None,
    };
    let events = state.store.newest_audit_events(&filter, 200).await?;
    // The whole chain is read to check it: only when asked.
    let verdict = match f.verify.as_deref() {
        Some("1") => Some(crate::checkpoints::verify(&state.store, &state.audit_key, &[]).await?),
        _ => None,
    };
    let summary = verdict.as_ref().map(|v| match v {
        crate::checkpoints::Verdict::Intact {
            events,
            checkpoints,
        } => (
            true,
            format!("intact: {events} events, {checkpoints} signed checkpoints match"),
        ),
        crate::checkpoints::Verdict::Broken(b) => (false, format!("TAMPERED: {b}")),
        crate::checkpoints::Verdict::Mismatch { checkpoint, reason } => (
            false,
            format!(
                "TAMPERED: checkpoint of event {} no longer matches: {reason}",
                checkpoint.seq
            ),
        ),
    });
    let latest = state.store.latest_checkpoint().await?;
    let body = html! {
        p data-field="checkpoint" {
            @match &latest {
                Some(c) => { "Newest signed checkpoint: event " (c.seq) ", at " (c.at) ". Keep copies of " code { "GET /v1/audit/checkpoint" } " outside the broker: only they show events removed together with the checkpoints stored here." },
                None => { "No checkpoint is signed yet." },
            }
        }
        @match &summary {
            Some((intact, summary)) => p class={ "chain " @if *intact { "ok" } @else { "error" } } data-field="chain" { "The audit chain is " (summary) "." },
            None => p { a class="button" href="/console/audit?verify=1" { "Check the chain and its checkpoints" } },
        }
        form method="get" action="/console/audit" class="filters" {
            label { "Tenant " input type="text" name="tenant" value=(f.tenant.clone().unwrap_or_default()); }
            label { "Resource " input type="text" name="resource" value=(f.resource.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        table class="audit" {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Action" } th { "Outcome" } th { "Tenant" } th { "Resource" } } }
            tbody {
                @for e in &events {
                    tr data-seq=(e.seq) { td { (e.seq) } td { (crate::time::rfc3339(e.at)) } td { (e.actor) } td { (e.action) } td { (e.outcome) }
                        td { (e.tenant.clone().unwrap_or_default()) } td { (e.resource_id.clone().unwrap_or_default()) } }
                }
            }
        }
    };
    Ok(layout("Audit log", Some(&visitor), body).into_response())
}
