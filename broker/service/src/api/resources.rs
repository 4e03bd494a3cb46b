//! Tenant routes for instances, volumes and buckets, and operations.
//!
//! Each handler: typed extractors (permission, path, query, strict body) → one service
//! call → a typed response. The three resource types share one body for each route
//! (`resource_routes!`), and each creating body parses itself into a `CreateRequest` once.

use alliance_core::{
    DataClassName, ImageName, Jurisdiction, MemberId, ResourceShape, ResourceType, SizeName,
};
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::{field, name, text, StrictJson};
use super::problem::reply;
use super::views::{accepted, page, OperationView, Page, PageParams, ResourceView};
use crate::auth::permissions::{ProvisionResources, ReadResources};
use crate::auth::Authorized;
use crate::compliance::Compliance;
use crate::error::{ApiError, ApiResult, Problem};
use crate::idempotency::RequestFacts;
use crate::provisioning::{self, CreateRequest};
use crate::state::AppState;
use crate::store::ResourceSettings;

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
    /// The name of one of your SSH keys (`/v1/ssh-keys`), installed for the default user.
    pub ssh_key: Option<String>,
    /// Cloud-init user data, base64 (at most 16 KiB decoded); never returned or logged.
    pub user_data: Option<String>,
    /// Inbound rules; everything else is closed.
    #[serde(default)]
    pub ingress: Vec<crate::usable::IngressInput>,
    /// A public address (false by default).
    #[serde(default)]
    pub public_ip: bool,
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
    /// An instance of yours to attach it to once created: the volume is placed at that
    /// instance's member (co-location).
    pub attach_to: Option<String>,
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

/// A creating body of `resource_type`, as JSON, as the validated request: what the
/// console's create form submits goes through the API's own parsing.
pub(crate) fn create_request(
    resource_type: ResourceType,
    body: &serde_json::Value,
    state: &AppState,
) -> ApiResult<CreateRequest> {
    fn parsed<T: serde::de::DeserializeOwned>(body: &serde_json::Value) -> ApiResult<T> {
        serde_json::from_value(body.clone()).map_err(|e| ApiError::invalid_field(e.to_string()))
    }
    match resource_type {
        ResourceType::Instance => parsed::<CreateInstance>(body)?.request(state),
        ResourceType::Volume => parsed::<CreateVolume>(body)?.request(state),
        ResourceType::Bucket => parsed::<CreateBucket>(body)?.request(state),
    }
}

/// A creating body: parsed once, here, into the validated request provisioning takes.
trait CreateBody {
    /// The validated request.
    fn request(&self, state: &AppState) -> ApiResult<CreateRequest>;
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
        shape: ResourceShape::default(),
        member: field("member", member, MemberId::parse)?,
        settings: ResourceSettings::default(),
    })
}

impl CreateBody for CreateInstance {
    fn request(&self, state: &AppState) -> ApiResult<CreateRequest> {
        let mut request = common(
            ResourceType::Instance,
            &self.name,
            self.jurisdiction.as_deref(),
            self.data_class.as_deref(),
            self.member.as_deref(),
        )?;
        let size = field("size", Some(&self.size), SizeName::parse)?;
        let image = field("image", Some(&self.image), ImageName::parse)?;
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
        request.shape.size = size;
        request.shape.image = image;
        let settings = &mut request.settings;
        settings.ssh_key = self
            .ssh_key
            .as_deref()
            .map(|k| {
                crate::ssh_keys::parse_name(k).map_err(|_| {
                    ApiError::invalid_field(
                        "`ssh_key`: not a key name (1 to 64 of A-Z, a-z, 0-9, '.', '_' or '-')",
                    )
                })
            })
            .transpose()?;
        if let Some(raw) = &self.user_data {
            let (data, sha256) = crate::usable::user_data(raw)?;
            settings.user_data = Some(data);
            settings.user_data_sha256 = Some(sha256);
        }
        settings.ingress = crate::usable::ingress(&self.ingress)?;
        settings.public_ip = self.public_ip;
        Ok(request)
    }
}

impl CreateBody for CreateVolume {
    fn request(&self, _state: &AppState) -> ApiResult<CreateRequest> {
        let mut request = common(
            ResourceType::Volume,
            &self.name,
            self.jurisdiction.as_deref(),
            self.data_class.as_deref(),
            self.member.as_deref(),
        )?;
        if !(1..=65_536).contains(&self.size_gb) {
            return Err(ApiError::invalid_field("`size_gb` must be from 1 to 65536"));
        }
        request.shape.size_gb = Some(self.size_gb);
        request.settings.attach_to = self
            .attach_to
            .as_deref()
            .map(|id| text("attach_to", id, 64))
            .transpose()?;
        Ok(request)
    }
}

impl CreateBody for CreateBucket {
    fn request(&self, _state: &AppState) -> ApiResult<CreateRequest> {
        common(
            ResourceType::Bucket,
            &self.name,
            self.jurisdiction.as_deref(),
            self.data_class.as_deref(),
            self.member.as_deref(),
        )
    }
}

async fn create_any<B: CreateBody>(
    state: &AppState,
    auth: &Authorized<ProvisionResources>,
    facts: &RequestFacts,
    uri: &OriginalUri,
    body: &StrictJson<B>,
) -> ApiResult<Response> {
    let request = body.value.request(state)?;
    let stored = provisioning::create(
        state,
        &auth.principal,
        facts,
        uri.path(),
        &body.canonical,
        request,
        accepted,
    )
    .await?;
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
    let compliance = Compliance::members_only(state);
    Ok(Json(page(
        rows,
        limit,
        resource_type.as_str(),
        |r| r.id.clone(),
        |r| view(&compliance, r),
    )))
}

async fn get_any(
    state: &AppState,
    auth: &crate::auth::Principal,
    resource_type: ResourceType,
    id: &str,
) -> ApiResult<Json<ResourceView>> {
    let scope = auth.tenant_scope()?;
    let row = state
        .store
        .resource(&scope, resource_type, id)
        .await?
        .ok_or_else(|| ApiError::not_found(resource_type.as_str(), id))?;
    Ok(Json(view(&Compliance::members_only(state), &row)))
}

/// A resource's view with its compliance.
fn view(compliance: &Compliance<'_>, r: &crate::store::ResourceRow) -> ResourceView {
    ResourceView::from(r).with_compliance(compliance.of_resource(r))
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

/// The four routes of one resource type: create, list, get, delete. One body for the three
/// types; each route keeps its own name and OpenAPI entry.
macro_rules! resource_routes {
    (
        $resource_type:expr, $tag:literal, $collection:literal, $item:literal, $body:ty,
        $a:literal, $plural:literal,
        $create:ident, $list:ident, $get:ident, $delete:ident
    ) => {
        #[doc = concat!("Create ", $a, " in a country.")]
        #[utoipa::path(post, path = $collection, tag = $tag, request_body = $body,
            params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
            responses((status = 202, body = OperationView, description = "accepted; poll the operation"), (status = 400, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)),
            security(("bearer" = [])))]
        pub async fn $create(
            State(state): State<AppState>,
            auth: Authorized<ProvisionResources>,
            facts: RequestFacts,
            uri: OriginalUri,
            body: StrictJson<$body>,
        ) -> ApiResult<Response> {
            create_any(&state, &auth, &facts, &uri, &body).await
        }

        #[doc = concat!("List your ", $plural, ".")]
        #[utoipa::path(get, path = $collection, tag = $tag, params(PageParams), responses((status = 200, body = Page<ResourceView>), (status = 400, body = Problem)), security(("bearer" = [])))]
        pub async fn $list(
            State(state): State<AppState>,
            auth: Authorized<ReadResources>,
            ApiQuery(params): ApiQuery<PageParams>,
        ) -> ApiResult<Json<Page<ResourceView>>> {
            list_any(&state, &auth.principal, $resource_type, &params).await
        }

        #[doc = concat!("One of your ", $plural, ".")]
        #[utoipa::path(get, path = $item, tag = $tag, params(("id" = String, Path)), responses((status = 200, body = ResourceView), (status = 404, body = Problem)), security(("bearer" = [])))]
        pub async fn $get(
            State(state): State<AppState>,
            auth: Authorized<ReadResources>,
            Path(id): Path<String>,
        ) -> ApiResult<Json<ResourceView>> {
            get_any(&state, &auth.principal, $resource_type, &id).await
        }

        #[doc = concat!("Delete ", $a, " (asynchronous).")]
        #[utoipa::path(delete, path = $item, tag = $tag, params(("id" = String, Path)), responses((status = 202, body = OperationView), (status = 404, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
        pub async fn $delete(
            State(state): State<AppState>,
            auth: Authorized<ProvisionResources>,
            facts: RequestFacts,
            Path(id): Path<String>,
        ) -> ApiResult<Response> {
            delete_any(&state, &auth.principal, &facts, $resource_type, &id).await
        }
    };
}

resource_routes!(
    ResourceType::Instance,
    "instances",
    "/v1/instances",
    "/v1/instances/{id}",
    CreateInstance,
    "an instance",
    "instances",
    create_instance,
    list_instances,
    get_instance,
    delete_instance
);
resource_routes!(
    ResourceType::Volume,
    "volumes",
    "/v1/volumes",
    "/v1/volumes/{id}",
    CreateVolume,
    "a volume",
    "volumes",
    create_volume,
    list_volumes,
    get_volume,
    delete_volume
);
resource_routes!(
    ResourceType::Bucket,
    "buckets",
    "/v1/buckets",
    "/v1/buckets/{id}",
    CreateBucket,
    "a bucket",
    "buckets",
    create_bucket,
    list_buckets,
    get_bucket,
    delete_bucket
);

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
