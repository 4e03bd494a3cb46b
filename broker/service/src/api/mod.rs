//! The HTTP API: the router table, the middleware stack and the operational routes
//! (`server` accepts and bounds the connections it is served on).
//!
//! Middleware, outermost first: gzip compression of bodies over 1 KiB, the body limit (413
//! problem), then on each route the edge ([`edge`]: request id, span, declared body size,
//! timeout, panic catching (500 problem), problem documents for every error, the 5xx log,
//! metrics).
//! Unknown routes and methods are answered with problem+json too.

pub mod actions;
pub mod catalogue;
pub mod edge;
pub mod extract;
pub mod json;
pub mod partners;
pub mod problem;
pub mod reconciliation;
pub mod resources;
pub mod server;
pub mod ssh_keys;
pub mod tenants;
pub mod usage;
pub mod views;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "alliance", description = "Cloud federation broker: one API, resources placed by jurisdiction on the member clouds of the alliance."),
    modifiers(&BearerAuth),
    tags((name = "instances"), (name = "volumes"), (name = "buckets"), (name = "ssh-keys"), (name = "operations"), (name = "placement"), (name = "members"), (name = "tenants"), (name = "audit"), (name = "partners"), (name = "usage"), (name = "billing"), (name = "operations-ops", description = "health, readiness, metrics"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Bodies smaller than this go out uncompressed: below a kilobyte, gzip saves a few bytes
/// at the cost of more time than the whole answer takes.
const COMPRESS_ABOVE: u16 = 1024;

/// The router with its OpenAPI document.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            resources::create_instance,
            resources::list_instances
        ))
        .routes(routes!(resources::get_instance, resources::delete_instance))
        .routes(routes!(resources::create_volume, resources::list_volumes))
        .routes(routes!(resources::get_volume, resources::delete_volume))
        .routes(routes!(resources::create_bucket, resources::list_buckets))
        .routes(routes!(resources::get_bucket, resources::delete_bucket))
        .routes(routes!(resources::get_operation))
        .routes(routes!(actions::instance_action))
        .routes(routes!(actions::attach_volume))
        .routes(routes!(actions::detach_volume))
        .routes(routes!(actions::bucket_url))
        .routes(routes!(ssh_keys::create_ssh_key, ssh_keys::list_ssh_keys))
        .routes(routes!(ssh_keys::get_ssh_key, ssh_keys::delete_ssh_key))
        .routes(routes!(catalogue::evaluate))
        .routes(routes!(catalogue::list_members))
        .routes(routes!(catalogue::get_member))
        .routes(routes!(tenants::residency))
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::get_tenant, tenants::update_tenant))
        .routes(routes!(catalogue::audit))
        .routes(routes!(catalogue::audit_checkpoint))
        .routes(routes!(partners::submit))
        .routes(routes!(partners::get))
        .routes(routes!(partners::approve))
        .routes(routes!(partners::reject))
        .routes(routes!(partners::suspend))
        .routes(routes!(partners::resume))
        .routes(routes!(partners::drain))
        .routes(routes!(partners::retire))
        .routes(routes!(partners::drift, partners::check_drift))
        .routes(routes!(partners::member_resources))
        .merge(
            // Statements are larger than other bodies: their own limit, set on their route
            // (a route's limit takes precedence over the router's).
            OpenApiRouter::new()
                .routes(routes!(partners::statement, reconciliation::upload))
                .layer(DefaultBodyLimit::max(
                    state.config.server.statement_limit_bytes,
                )),
        )
        .routes(routes!(reconciliation::create))
        .routes(routes!(reconciliation::get))
        .routes(routes!(usage::usage))
        .routes(routes!(usage::export))
        .routes(routes!(usage::invoice))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .split_for_parts();
    let openapi_json = openapi.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    let body_limit = state.config.server.body_limit_bytes;
    let edge = edge::Edge {
        timeout: Duration::from_millis(state.config.server.request_timeout_ms),
        body_limit,
        statement_limit: state.config.server.statement_limit_bytes,
        handles: Default::default(),
    };
    let routed = api
        .route("/metrics", axum::routing::get(metrics))
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], openapi_json)
            }),
        )
        .route("/docs", axum::routing::get(|| async { Html(DOCS_PAGE) }))
        .merge(crate::console::router(
            state.config.server.statement_limit_bytes,
        ))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound, "no such route; see /docs") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not answer that method; see /docs",
            )
        })
        .layer(middleware::from_fn_with_state(edge, edge::edge))
        .with_state(state);
    // Layers that need no route are put around the router, not on each route (axum boxes
    // and clones each route's stack per request for every `Router::layer`).
    let outer = tower::ServiceBuilder::new()
        .layer(
            CompressionLayer::new().compress_when(
                SizeAbove::new(COMPRESS_ABOVE)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::IMAGES)
                    .and(NotForContentType::SSE),
            ),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routed);
    Router::new().fallback_service(outer)
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations-ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the store answers; member health is reported.
#[utoipa::path(get, path = "/readyz", tag = "operations-ops", responses((status = 200, description = "ready"), (status = 503, description = "store unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let members: serde_json::Map<String, serde_json::Value> = state
        .members
        .all()
        .iter()
        .map(|e| {
            let (_, health) = state.members.state_of(e.config.id.get_ref());
            (e.config.id.get_ref().to_string(), health.as_str().into())
        })
        .collect();
    match state.store.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "store": "up", "members": members }))
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store unreachable");
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "not_ready", "store": "down", "members": members }))).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The API page: served from the binary, renders /openapi.json with no external asset.
const DOCS_PAGE: &str = include_str!("docs.html");
