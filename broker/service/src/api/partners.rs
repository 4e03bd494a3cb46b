//! Partner applications and member lifecycle routes.

use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::StrictJson;
use super::problem::idempotent;
use super::views::{page, ApplicationView, MemberView, Page, PageParams};
use crate::auth::permissions::{ApplyAsPartner, ManageMembers};
use crate::auth::{Authorized, Role};
use crate::error::{ApiError, ApiResult, Problem};
use crate::idempotency::{json_reply, RequestFacts};
use crate::partners::{self, Lifecycle, SelfDescription};
use crate::state::AppState;

/// Apply to join the alliance; the conformance suite runs against the endpoint.
#[utoipa::path(post, path = "/v1/partner-applications", tag = "partners", request_body = SelfDescription,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = ApplicationView, description = "stored; conformance is running"), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    auth: Authorized<ApplyAsPartner>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<SelfDescription>,
) -> ApiResult<Response> {
    let canonical = body.canonical.clone();
    let action = async {
        let row = partners::submit(&state, &auth.principal, body.value, &body.canonical).await?;
        json_reply(202, None, &ApplicationView::from(&row))
    };
    idempotent(&state, &auth.principal, &facts, &uri, &canonical, action).await
}

/// An application: its status and conformance report (never its credentials).
#[utoipa::path(get, path = "/v1/partner-applications/{id}", operation_id = "get_partner_application", tag = "partners", params(("id" = String, Path)),
    responses((status = 200, body = ApplicationView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    auth: Authorized<ApplyAsPartner>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApplicationView>> {
    let row = partners::lifecycle::application(&state, &id).await?;
    let own = auth
        .principal
        .member
        .as_ref()
        .is_some_and(|m| m.as_str() == row.member_id);
    if !auth.principal.has(Role::Operator) && !own {
        return Err(ApiError::not_found("partner application", &id));
    }
    Ok(Json(ApplicationView::from(&row)))
}

/// `POST /v1/partner-applications/{id}/reject`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why.
    pub reason: Option<String>,
}

/// Approve an application: the member is active at once (operator).
#[utoipa::path(post, path = "/v1/partner-applications/{id}/approve", tag = "partners", params(("id" = String, Path)),
    responses((status = 200, body = ApplicationView), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApplicationView>> {
    let row = partners::approve(&state, &auth.principal, &id).await?;
    Ok(Json(ApplicationView::from(&row)))
}

/// Reject an application (operator).
#[utoipa::path(post, path = "/v1/partner-applications/{id}/reject", tag = "partners", params(("id" = String, Path)), request_body = Option<Decision>,
    responses((status = 200, body = ApplicationView), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
    super::extract::RawBody(body): super::extract::RawBody,
) -> ApiResult<Json<ApplicationView>> {
    let reason = if body.is_empty() {
        None
    } else {
        super::json::parse::<Decision>(&body)?.value.reason
    };
    let reason = reason
        .map(|r| super::json::text("reason", &r, 500))
        .transpose()?;
    let row = partners::reject(&state, &auth.principal, &id, reason.as_deref()).await?;
    Ok(Json(ApplicationView::from(&row)))
}

async fn lifecycle(
    state: &AppState,
    auth: &crate::auth::Principal,
    id: &str,
    action: Lifecycle,
) -> ApiResult<Json<MemberView>> {
    partners::transition(state, auth, id, action).await?;
    let entry = state
        .members
        .get(id)
        .ok_or_else(|| ApiError::not_found("member", id))?;
    Ok(Json(super::catalogue::member_view(state, &entry)))
}

/// Suspend a member: no new placements; its resources stay readable and deletable (operator).
#[utoipa::path(post, path = "/v1/members/{id}/suspend", tag = "members", params(("id" = String, Path)), responses((status = 200, body = MemberView), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn suspend(
    State(state): State<AppState>,
    auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    lifecycle(&state, &auth.principal, &id, Lifecycle::Suspend).await
}

/// Resume a suspended or draining member (operator).
#[utoipa::path(post, path = "/v1/members/{id}/resume", tag = "members", params(("id" = String, Path)), responses((status = 200, body = MemberView), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    lifecycle(&state, &auth.principal, &id, Lifecycle::Resume).await
}

/// Drain a member: no new placements while its resources go (operator).
#[utoipa::path(post, path = "/v1/members/{id}/drain", tag = "members", params(("id" = String, Path)), responses((status = 200, body = MemberView), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn drain(
    State(state): State<AppState>,
    auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    lifecycle(&state, &auth.principal, &id, Lifecycle::Drain).await
}

/// Retire a member that holds no live resources (operator).
#[utoipa::path(post, path = "/v1/members/{id}/retire", tag = "members", params(("id" = String, Path)), responses((status = 200, body = MemberView), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn retire(
    State(state): State<AppState>,
    auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberView>> {
    lifecycle(&state, &auth.principal, &id, Lifecycle::Retire).await
}

/// The latest drift report of a member; a check runs now if none has (operator).
#[utoipa::path(get, path = "/v1/members/{id}/drift", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = crate::drift::DriftReport), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn drift(
    State(state): State<AppState>,
    _auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let entry = state
        .members
        .get(&id)
        .ok_or_else(|| ApiError::not_found("member", &id))?;
    match state.store.drift_report(&id).await? {
        Some(report) => Ok(Json(report)),
        None => Ok(Json(
            serde_json::to_value(crate::drift::check_member(&state, &entry).await?)
                .map_err(ApiError::internal)?,
        )),
    }
}

/// Compare the member with the books now (operator).
#[utoipa::path(post, path = "/v1/members/{id}/drift", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = crate::drift::DriftReport), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn check_drift(
    State(state): State<AppState>,
    _auth: Authorized<ManageMembers>,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::drift::DriftReport>> {
    let entry = state
        .members
        .get(&id)
        .ok_or_else(|| ApiError::not_found("member", &id))?;
    Ok(Json(crate::drift::check_member(&state, &entry).await?))
}

/// A resource placed on a member, as its partner sees it (no tenant-chosen names).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct PlacedResource {
    /// Broker id.
    pub id: String,
    /// `instance`, `volume` or `bucket`.
    pub resource_type: String,
    /// Owning tenant.
    pub tenant: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Broker status.
    pub status: String,
    /// The member's own id.
    pub member_resource_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// The resources placed on a member, by id, a page at a time: its partner, or an operator.
#[utoipa::path(get, path = "/v1/members/{id}/resources", tag = "members", params(("id" = String, Path), PageParams),
    responses((status = 200, body = Page<PlacedResource>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn member_resources(
    State(state): State<AppState>,
    auth: Authorized<ApplyAsPartner>,
    Path(id): Path<String>,
    ApiQuery(paging): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<PlacedResource>>> {
    let own = auth
        .principal
        .member
        .as_ref()
        .is_some_and(|m| m.as_str() == id);
    if (!auth.principal.has(Role::Operator) && !own) || state.members.get(&id).is_none() {
        return Err(ApiError::not_found("member", &id));
    }
    let (limit, after) = paging.resolve("member-resources")?;
    let rows = state
        .store
        .member_holdings_after(&id, false, after.as_deref().unwrap_or(""), limit + 1)
        .await?;
    Ok(Json(page(
        rows,
        limit,
        "member-resources",
        |h| h.id.clone(),
        |h| PlacedResource {
            id: h.id.clone(),
            resource_type: h.resource_type.as_str().to_owned(),
            tenant: h.tenant_id.to_string(),
            jurisdiction: h.jurisdiction.to_string(),
            status: h.status.as_str().to_owned(),
            member_resource_id: h.member_resource_id.clone(),
            created_at: crate::time::rfc3339(h.created_at),
        },
    )))
}

/// A member's own usage statement for a period, fetched from the member (FOCUS CSV): its
/// partner, billing, operators.
#[utoipa::path(get, path = "/v1/members/{id}/statements/{period}", tag = "members", params(("id" = String, Path), ("period" = String, Path)),
    responses((status = 200, description = "FOCUS CSV", content_type = "text/csv"), (status = 404, body = Problem), (status = 503, body = Problem)), security(("bearer" = [])))]
pub async fn statement(
    State(state): State<AppState>,
    auth: Authorized<crate::auth::permissions::ReadStatements>,
    Path((id, period)): Path<(String, String)>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if !auth.principal.may_act_for_member(&id) {
        return Err(ApiError::not_found("member", &id));
    }
    alliance_core::billing::Period::parse(&period)
        .map_err(|e| ApiError::invalid_field(e.to_string()))?;
    let entry = state
        .members
        .get(&id)
        .ok_or_else(|| ApiError::not_found("member", &id))?;
    // An uploaded statement takes precedence over fetching one from the member.
    match crate::billing::member_statement(&state.store, entry.adapter.as_ref(), &id, &period)
        .await?
    {
        Some((csv, _)) => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv,
        )
            .into_response()),
        None => Err(ApiError::not_found("statement", &format!("{id}/{period}"))),
    }
}
