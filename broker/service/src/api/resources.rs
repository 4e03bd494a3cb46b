//! Tenant routes for instances, volumes and buckets, and operations.
//!
//! Each handler: typed extractors (permission, path, query, strict body) → one service
//! call → a typed response. The three resource types share the helpers at the bottom.

use alliance_core::{DataClassName, ImageName, Jurisdiction, MemberId, ResourceType, SizeName};
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::{field, name, StrictJson};
use crate::auth::permissions::{ProvisionResources, ReadResources};
use crate::auth::Authorized;
use crate::error::{ApiError, ApiResult, Problem};
use super::problem::reply;
use super::views::{accepted, page, OperationView, Page, PageParams, ResourceView};
use crate::idempotency::RequestFacts;
use crate::provisioning::{self, CreateRequest};
use crate::state::AppState;

/// `POST /v1/instances`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Your name for it.
    pub name: String,
    /// ISO 3166-1 alpha-2; your tenant's home when absent.
    pub jurisdiction: Option<String>,
    /// `small`, `medium`, `large`.
    pub size: String,
    /// `debian-12`, `ubuntu-24.04`.
    pub image: String,
    /// Your tenant's default when absent.
    pub data_class: Option<String>,
    /// Pin a member.
    pub member: Option<String>,
}

/// `POST /v1/volumes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    /// Your name for it.
    pub name: String,
    /// ISO 3166-1 alpha-2; your tenant's home when absent.
    pub jurisdiction: Option<String>,
    /// Size in GB, 1 to 65536.
    pub size_gb: u32,
    /// Your tenant's default when absent.
    pub data_class: Option<String>,
    /// Pin a member.
    pub member: Option<String>,
}

/// `POST /v1/buckets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBucket {
    /// Your name for it.
    pub name: String,
    /// ISO 3166-1 alpha-2; your tenant's home when absent.
    pub jurisdiction: Option<String>,
    /// Your tenant's default when absent.
    pub data_class: Option<String>,
    /// Pin a member.
    pub member: Option<String>,
}

fn common(
    resource_type: ResourceType,
    raw_name: &str,
    jurisdiction: Option<&str>,
    data_class: Option<&str>,
    member: Option<&str>,
) -> ApiResult<CreateRequest> {
    Ok(CreateRequest {
        resource_type,
        name: name(raw_name)?,
        jurisdiction: field("jurisdiction", jurisdiction, Jurisdiction::parse)?,
        data_class: field("data_class", data_class, DataClassName::parse)?,
        size: None,
        image: None,
        size_gb: None,
        member: field("member", member, MemberId::parse)?,
    })
}

fn instance_request(state: &AppState, body: &CreateInstance) -> ApiResult<CreateRequest> {
    let mut request = common(
        ResourceType::Instance,
        &body.name,
        body.jurisdiction.as_deref(),
        body.data_class.as_deref(),
        body.member.as_deref(),
    )?;
    let size = field("size", Some(&body.size), SizeName::parse)?;
    let image = field("image", Some(&body.image), ImageName::parse)?;
    if let Some(size) = &size {
        if !state.members.known_sizes().contains(size) {
            return Err(ApiError::invalid_field(format!(
                "`size`: `{size}` is not a size any member offers"
            )));
        }
    }
    if let Some(image) = &image {
        if !state.members.known_images().contains(image) {
            return Err(ApiError::invalid_field(format!(
                "`image`: `{image}` is not an image any member offers"
            )));
        }
    }
    request.size = size;
    request.image = image;
    Ok(request)
}

async fn create_any(
    state: &AppState,
    auth: &crate::auth::Principal,
    facts: &RequestFacts,
    uri: &OriginalUri,
    canonical: &serde_json::Value,
    request: CreateRequest,
) -> ApiResult<Response> {
    let stored =
        provisioning::create(state, auth, facts, uri.path(), canonical, request, accepted).await?;
    Ok(reply(&stored))
}

async fn list_any(
    state: &AppState,
    auth: &crate::auth::Principal,
    resource_type: ResourceType,
    params: &PageParams,
) -> ApiResult<Json<Page<ResourceView>>> {
    let scope = auth.tenant_scope()?;
    let (limit, after) = params.resolve(resource_type.as_str())?;
    let rows = state
        .store
        .resources(&scope, resource_type, after.as_deref(), limit + 1)
        .await?;
    Ok(Json(page(
        rows,
        limit,
        resource_type.as_str(),
        |r| r.id.clone(),
        |r| ResourceView::from(r),
    )))
}

async fn get_any(
    state: &AppState,
    auth: &crate::auth::Principal,
    resource_type: ResourceType,
    id: &str,
) -> ApiResult<Json<ResourceView>> {
    let scope = auth.tenant_scope()?;
    let row = state.store.resource(&scope, resource_type, id).await?;
    row.map(|r| Json(ResourceView::from(&r)))
        .ok_or_else(|| ApiError::not_found(resource_type.as_str(), id))
}

async fn delete_any(
    state: &AppState,
    auth: &crate::auth::Principal,
    facts: &RequestFacts,
    resource_type: ResourceType,
    id: &str,
) -> ApiResult<Response> {
    let stored = provisioning::delete(state, auth, facts, resource_type, id, accepted).await?;
    Ok(reply(&stored))
}

/// Create an instance in a country.
#[utoipa::path(post, path = "/v1/instances", tag = "instances", request_body = CreateInstance,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = OperationView, description = "accepted; poll the operation"), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_instance(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<CreateInstance>,
) -> ApiResult<Response> {
    let request = instance_request(&state, &body.value)?;
    create_any(
        &state,
        &auth.principal,
        &facts,
        &uri,
        &body.canonical,
        request,
    )
    .await
}

/// Create a volume in a country.
#[utoipa::path(post, path = "/v1/volumes", tag = "volumes", request_body = CreateVolume,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = OperationView), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_volume(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<CreateVolume>,
) -> ApiResult<Response> {
    let v = &body.value;
    let mut request = common(
        ResourceType::Volume,
        &v.name,
        v.jurisdiction.as_deref(),
        v.data_class.as_deref(),
        v.member.as_deref(),
    )?;
    if !(1..=65_536).contains(&v.size_gb) {
        return Err(ApiError::invalid_field("`size_gb` must be from 1 to 65536"));
    }
    request.size_gb = Some(v.size_gb);
    create_any(
        &state,
        &auth.principal,
        &facts,
        &uri,
        &body.canonical,
        request,
    )
    .await
}

/// Create a bucket in a country.
#[utoipa::path(post, path = "/v1/buckets", tag = "buckets", request_body = CreateBucket,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 202, body = OperationView), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_bucket(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<CreateBucket>,
) -> ApiResult<Response> {
    let v = &body.value;
    let request = common(
        ResourceType::Bucket,
        &v.name,
        v.jurisdiction.as_deref(),
        v.data_class.as_deref(),
        v.member.as_deref(),
    )?;
    create_any(
        &state,
        &auth.principal,
        &facts,
        &uri,
        &body.canonical,
        request,
    )
    .await
}

/// List your instances.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(PageParams), responses((status = 200, body = Page<ResourceView>)), security(("bearer" = [])))]
pub async fn list_instances(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ResourceView>>> {
    list_any(&state, &auth.principal, ResourceType::Instance, &params).await
}

/// List your volumes.
#[utoipa::path(get, path = "/v1/volumes", tag = "volumes", params(PageParams), responses((status = 200, body = Page<ResourceView>)), security(("bearer" = [])))]
pub async fn list_volumes(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ResourceView>>> {
    list_any(&state, &auth.principal, ResourceType::Volume, &params).await
}

/// List your buckets.
#[utoipa::path(get, path = "/v1/buckets", tag = "buckets", params(PageParams), responses((status = 200, body = Page<ResourceView>)), security(("bearer" = [])))]
pub async fn list_buckets(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<ResourceView>>> {
    list_any(&state, &auth.principal, ResourceType::Bucket, &params).await
}

/// One of your instances.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances", params(("id" = String, Path)), responses((status = 200, body = ResourceView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_instance(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceView>> {
    get_any(&state, &auth.principal, ResourceType::Instance, &id).await
}

/// One of your volumes.
#[utoipa::path(get, path = "/v1/volumes/{id}", tag = "volumes", params(("id" = String, Path)), responses((status = 200, body = ResourceView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_volume(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceView>> {
    get_any(&state, &auth.principal, ResourceType::Volume, &id).await
}

/// One of your buckets.
#[utoipa::path(get, path = "/v1/buckets/{id}", tag = "buckets", params(("id" = String, Path)), responses((status = 200, body = ResourceView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_bucket(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceView>> {
    get_any(&state, &auth.principal, ResourceType::Bucket, &id).await
}

/// Delete an instance (asynchronous).
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = "instances", params(("id" = String, Path)), responses((status = 202, body = OperationView), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn delete_instance(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    delete_any(
        &state,
        &auth.principal,
        &facts,
        ResourceType::Instance,
        &id,
    )
    .await
}

/// Delete a volume (asynchronous).
#[utoipa::path(delete, path = "/v1/volumes/{id}", tag = "volumes", params(("id" = String, Path)), responses((status = 202, body = OperationView), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn delete_volume(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    delete_any(&state, &auth.principal, &facts, ResourceType::Volume, &id).await
}

/// Delete a bucket (asynchronous).
#[utoipa::path(delete, path = "/v1/buckets/{id}", tag = "buckets", params(("id" = String, Path)), responses((status = 202, body = OperationView), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn delete_bucket(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    delete_any(&state, &auth.principal, &facts, ResourceType::Bucket, &id).await
}

/// One of your operations.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations", params(("id" = String, Path)), responses((status = 200, body = OperationView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_operation(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    Path(id): Path<String>,
) -> ApiResult<Json<OperationView>> {
    let scope = auth.principal.tenant_scope()?;
    let op = state.store.operation(&scope, &id).await?;
    op.map(|o| Json(OperationView::from(&o)))
        .ok_or_else(|| ApiError::not_found("operation", &id))
}
