//! Members, placement dry runs and the audit log.

use alliance_core::{
    DataClassName, Jurisdiction, MemberId, PlacementRequest, ResourceType, SizeName,
};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::{field, StrictJson};
use super::views::{page, EvaluationView, MemberView, Page, PageParams};
use crate::auth::permissions::{ReadAudit, ReadAuditCheckpoint, ReadMembers, ReadResources};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult, Problem};
use crate::provisioning;
use crate::state::AppState;
use crate::store::{AuditEvent, AuditFilter};
use crate::time::parse_rfc3339;

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
    /// Volumes: the instance it would be attached to (co-location at its member).
    pub attach_to: Option<String>,
    /// What the member must offer: `instance.access`, `instance.actions`, `volume.attach`,
    /// `bucket.urls` (a volume with `attach_to` needs `volume.attach` anyway).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub needs: Vec<alliance_core::Capability>,
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
    let mut request = PlacementRequest {
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
        needs: b
            .needs
            .iter()
            .copied()
            .chain(
                b.attach_to
                    .is_some()
                    .then_some(alliance_core::Capability::VolumeAttach),
            )
            .collect(),
    };
    let scope = auth.principal.tenant_scope()?;
    let colocation = match &b.attach_to {
        Some(instance) if request.resource_type == ResourceType::Volume => {
            Some(provisioning::actions::colocate(&state, &scope, &mut request, instance).await?)
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "`attach_to`: only a volume attaches to an instance",
            ))
        }
        None => None,
    };
    let decision = provisioning::evaluate(&state, &scope, &request).await?;
    let mut view = EvaluationView::from(&decision);
    view.constraints.extend(colocation);
    Ok(Json(view))
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

/// `GET /v1/audit` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
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
    let after: i64 = match after {
        None => 0,
        Some(seq) => seq
            .parse()
            .map_err(|_| ApiError::invalid_query("page_token is not a token this list gave out"))?,
    };
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

/// `GET /v1/audit/checkpoint` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointParams {
    /// An operator's choice of one tenant's view.
    pub tenant: Option<String>,
}

/// The newest signed checkpoint of the audit chain: the whole chain's for an operator, the
/// tenant's own view (with its event count up to the checkpoint) for a tenant. Keep copies
/// outside the broker: `alliance audit verify --checkpoint FILE` then shows events removed
/// from the log's end.
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit", params(CheckpointParams), responses((status = 200, body = crate::checkpoints::Checkpoint), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn audit_checkpoint(
    State(state): State<AppState>,
    auth: Authorized<ReadAuditCheckpoint>,
    ApiQuery(params): ApiQuery<CheckpointParams>,
) -> ApiResult<Json<crate::checkpoints::Checkpoint>> {
    let principal = &auth.principal;
    let tenant = match (&principal.tenant, params.tenant) {
        (Some(own), None) => Some(own.to_string()),
        (Some(own), Some(asked)) if asked == own.to_string() => Some(asked),
        (Some(_), Some(_)) => {
            return Err(ApiError::forbidden(
                "a tenant reads its own checkpoint only",
            ))
        }
        (None, asked) => asked,
    };
    let latest = state.store.latest_checkpoint().await?.ok_or_else(|| {
        ApiError::new(
            crate::error::ErrorCode::NotFound,
            "no audit checkpoint has been signed yet",
        )
    })?;
    let Some(tenant) = tenant else {
        return Ok(Json(latest));
    };
    let count = state.store.tenant_audit_count(&tenant, latest.seq).await?;
    let view = state
        .audit_key
        .sign(
            latest.seq,
            &latest.hash,
            state.clock.now_ms(),
            Some((tenant, count)),
        )
        .map_err(ApiError::internal)?;
    Ok(Json(view))
}
