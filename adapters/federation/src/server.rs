//! The reference member: a real HTTP server speaking `/federation/v1`, run by
//! `alliance member-sim`. Partners read it to learn the protocol; tests use it as a member
//! cloud that lives in its own process.
//!
//! Its resources live in the same journaled table as the in-process `sim` member (its own
//! clock, provisioning delay, failure injection), so it keeps its state across restarts
//! when given a state file. Started with a token it requires `Authorization: Bearer
//! <token>` on every route; without one it accepts any caller (it is a simulator).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, MemberAdapter, ResourceRef, ResourceSpec,
};
use alliance_adapter_sim::{SimAdapter, SimConfig};
use alliance_core::{DataClassName, ImageName, Jurisdiction, ResourceType, SizeName, TenantId};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::protocol::{Capabilities, CreateResource, Resource, ResourceList, PREFIX};

/// How to run a reference member.
#[derive(Debug, Clone)]
pub struct MemberSimOptions {
    /// The member's id.
    pub member_id: String,
    /// Jurisdictions it serves.
    pub jurisdictions: Vec<Jurisdiction>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// Provisioning delay and failure injection.
    pub sim: SimConfig,
    /// Journal file keeping its state across restarts.
    pub state_file: Option<PathBuf>,
    /// The member's own URL (`http://host:port`), where it serves the objects its signed
    /// URLs name; without it, objects are served on a loopback listener of their own.
    pub public_url: Option<String>,
}

/// The protocol's OpenAPI document, served at `/federation/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) struct Member {
    pub(crate) options: MemberSimOptions,
    pub(crate) sim: SimAdapter,
}

pub(crate) type Shared = Arc<Member>;

pub(crate) fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:alliance:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
        "code": code,
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

pub(crate) fn adapter_problem(e: AdapterError) -> Response {
    let status = match e.kind {
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = problem(status, "member.unavailable", e.message);
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

pub(crate) fn ctx() -> CallContext {
    CallContext::new(None, "member-sim", Duration::from_secs(10))
}

/// The member's router (also used in-process by tests).
pub fn router(options: MemberSimOptions) -> std::io::Result<Router> {
    let sim = match &options.state_file {
        Some(path) => {
            SimAdapter::with_journal(options.member_id.clone(), options.sim.clone(), path.clone())?
        }
        None => SimAdapter::new(options.member_id.clone(), options.sim.clone()),
    };
    let objects = match &options.public_url {
        Some(base) => sim.serve_objects_at(base.trim_end_matches('/').to_owned())?,
        None => Router::new(),
    };
    let member: Shared = Arc::new(Member { options, sim });
    let federation = Router::new()
        .route(&format!("{PREFIX}/capabilities"), get(capabilities))
        .route(
            &format!("{PREFIX}/openapi.json"),
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route(&format!("{PREFIX}/resources"), get(list))
        .route(&format!("{PREFIX}/statements/{{period}}"), get(statement))
        .route(
            &format!("{PREFIX}/resources/{{id}}"),
            get(read).put(create).delete(remove),
        )
        .route(
            &format!("{PREFIX}/resources/{{id}}/actions"),
            post(crate::server_usable::act),
        )
        .route(
            &format!("{PREFIX}/resources/{{id}}/attachment"),
            put(crate::server_usable::attach).delete(crate::server_usable::detach),
        )
        .route(
            &format!("{PREFIX}/resources/{{id}}/urls"),
            post(crate::server_usable::sign),
        )
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "route.not_found",
                "not a federation/v1 route",
            )
        })
        .layer(middleware::from_fn_with_state(member.clone(), authenticate))
        .with_state(member);
    // Signed URLs carry their own authorization: the object routes take no bearer token.
    Ok(objects.merge(federation))
}

/// Serves until SIGINT/SIGTERM.
pub async fn run(
    options: MemberSimOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let auth = if options.token.is_some() {
        "bearer token required"
    } else {
        "no token: any caller accepted"
    };
    println!(
        "member-sim {} ({}) listening on http://{addr}{PREFIX} ({auth})",
        options.member_id,
        options
            .jurisdictions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let options = MemberSimOptions {
        public_url: options
            .public_url
            .clone()
            .or_else(|| Some(format!("http://{addr}"))),
        ..options
    };
    let app = router(options)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn authenticate(State(member): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &member.options.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time comparison is not needed for a simulator, but equality must be exact.
        if given != Some(token.as_str()) {
            return problem(
                StatusCode::UNAUTHORIZED,
                "auth.invalid_token",
                "a valid bearer token is required",
            );
        }
    }
    next.run(request).await
}

fn default_catalogue(member: &str, kind: &str, names: &[&str]) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|n| ((*n).to_owned(), format!("{member}.{kind}.{n}")))
        .collect()
}

async fn capabilities(State(member): State<Shared>) -> Response {
    let id = &member.options.member_id;
    Json(Capabilities {
        protocol: "federation/v1".into(),
        member_id: id.clone(),
        jurisdictions: member
            .options
            .jurisdictions
            .iter()
            .map(ToString::to_string)
            .collect(),
        services: ResourceType::ALL.to_vec(),
        sizes: default_catalogue(id, "flavor", &["small", "medium", "large"]),
        images: default_catalogue(id, "image", &["debian-12", "ubuntu-24.04"]),
        version: Some(crate::protocol::VERSION.to_owned()),
        capabilities: member.sim.capabilities().into_iter().collect(),
    })
    .into_response()
}

pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn reference(id: &str) -> ResourceRef {
    // The member-sim keys its table by the broker's id; the type is not needed to find it.
    ResourceRef {
        resource_type: ResourceType::Instance,
        broker_id: id.to_owned(),
        member_resource_id: None,
    }
}

async fn create(
    State(member): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !valid_id(&id) {
        return problem(
            StatusCode::BAD_REQUEST,
            "validation.invalid_field",
            "the resource id must be 1 to 128 of a-z, A-Z, 0-9, '-', '_'",
        );
    }
    let request: CreateResource = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation.invalid_field",
                format!("invalid body: {e}"),
            )
        }
    };
    let jurisdiction = match Jurisdiction::parse(&request.jurisdiction) {
        Ok(j) if member.options.jurisdictions.contains(&j) => j,
        _ => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation.invalid_field",
                format!(
                    "this member does not serve jurisdiction {}",
                    request.jurisdiction
                ),
            )
        }
    };
    let parsed = (|| -> Result<ResourceSpec, String> {
        Ok(ResourceSpec {
            broker_id: id.clone(),
            resource_type: request.resource_type,
            name: request.name.clone(),
            tenant: TenantId::parse(&request.tenant).map_err(|e| e.to_string())?,
            jurisdiction,
            data_class: DataClassName::parse(&request.data_class).map_err(|e| e.to_string())?,
            size: request
                .size
                .as_deref()
                .map(SizeName::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            image: request
                .image
                .as_deref()
                .map(ImageName::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            size_gb: request.size_gb,
            access: request.access.clone(),
        })
    })();
    let spec = match parsed {
        Ok(spec) => spec,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation.invalid_field",
                e,
            )
        }
    };
    let existed = matches!(member.sim.get(&ctx(), &reference(&id)).await, Ok(Some(_)));
    match member.sim.create(&ctx(), &spec).await {
        Ok(r) => {
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (status, Json(Resource::from(&r))).into_response()
        }
        Err(e) => adapter_problem(e),
    }
}

async fn read(State(member): State<Shared>, Path(id): Path<String>) -> Response {
    match member.sim.get(&ctx(), &reference(&id)).await {
        Ok(Some(r)) => Json(Resource::from(&r)).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "resource.not_found",
            format!("no resource {id}"),
        ),
        Err(e) => adapter_problem(e),
    }
}

async fn remove(State(member): State<Shared>, Path(id): Path<String>) -> Response {
    match member.sim.get(&ctx(), &reference(&id)).await {
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Ok(Some(_)) => match member.sim.delete(&ctx(), &reference(&id)).await {
            Ok(()) => match member.sim.get(&ctx(), &reference(&id)).await {
                Ok(Some(r)) => (StatusCode::ACCEPTED, Json(Resource::from(&r))).into_response(),
                Ok(None) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => adapter_problem(e),
            },
            Err(e) => adapter_problem(e),
        },
        Err(e) => adapter_problem(e),
    }
}

/// `GET /resources` query.
#[derive(Debug, Deserialize)]
struct ListQuery {
    tenant: Option<String>,
    resource_type: Option<String>,
    page_token: Option<String>,
    limit: Option<usize>,
}

async fn list(State(member): State<Shared>, Query(query): Query<ListQuery>) -> Response {
    let tenant = match query.tenant.as_deref().map(TenantId::parse).transpose() {
        Ok(t) => t,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "validation.invalid_query",
                e.to_string(),
            )
        }
    };
    let types = match query.resource_type.as_deref() {
        None => ResourceType::ALL.to_vec(),
        Some(t) => match ResourceType::parse(t) {
            Ok(t) => vec![t],
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "validation.invalid_query",
                    e.to_string(),
                )
            }
        },
    };
    let mut all = Vec::new();
    for t in types {
        match member.sim.list(&ctx(), t, tenant.as_ref()).await {
            Ok(items) => all.extend(items),
            Err(e) => return adapter_problem(e),
        }
    }
    all.sort_by(|a, b| a.member_resource_id.cmp(&b.member_resource_id));
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let after = query.page_token.unwrap_or_default();
    let mut page: Vec<Resource> = all
        .iter()
        .filter(|r| r.member_resource_id > after)
        .take(limit + 1)
        .map(Resource::from)
        .collect();
    let next_page_token = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|r| r.id.clone())
    } else {
        None
    };
    Json(ResourceList {
        items: page,
        next_page_token,
    })
    .into_response()
}

async fn statement(State(member): State<Shared>, Path(period): Path<String>) -> Response {
    match member.sim.statement_csv(&period) {
        Ok(csv) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response(),
        Err(e) => problem(
            StatusCode::BAD_REQUEST,
            "validation.invalid_field",
            e.message,
        ),
    }
}
