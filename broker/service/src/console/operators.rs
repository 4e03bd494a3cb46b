//! The operator's pages: members with status and health, and their lifecycle actions
//! behind a confirmation.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::pages::layout;
use super::signin::check_csrf;
use super::{PageError, PageResult, Visitor};
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
            thead { tr { th { "Member" } th { "Countries" } th { "Certifications" } th { "Status" } th { "Health" } th { "Actions" } } }
            tbody {
                @for m in &views {
                    tr data-member=(m.id) {
                        td { (m.name) br; small { (m.id) } }
                        td { (m.jurisdictions.join(", ")) } td { (m.certifications.join(", ")) }
                        td class={ "status " (m.status) } data-field="status" { (m.status) } td data-field="health" { (m.health) }
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
