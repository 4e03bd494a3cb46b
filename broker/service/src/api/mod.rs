//! The HTTP API: the router table, the middleware stack and the operational routes
//! (`server` accepts and bounds the connections it is served on).
//!
//! Middleware, outermost first: an unsafe client `x-request-id` dropped, the request id
//! (generated or propagated), a tracing span per request, the 5xx log, panic catching (500
//! problem), metrics, a request timeout (503 problem), gzip compression, a declared
//! `Content-Length` over the route's limit refused at once, and the body limit (413
//! problem), and innermost any error answer still without a problem document made one.
//! Unknown routes and methods are answered with problem+json too.

pub mod actions;
pub mod catalogue;
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

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
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
    let timeout = Duration::from_millis(state.config.server.request_timeout_ms);
    let body_limit = state.config.server.body_limit_bytes;
    api.route("/metrics", axum::routing::get(metrics))
        .route("/openapi.json", axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json) }))
        .route("/docs", axum::routing::get(|| async { Html(DOCS_PAGE) }))
        .merge(crate::console::router(state.config.server.statement_limit_bytes))
        .fallback(|| async { ApiError::new(ErrorCode::RouteNotFound, "no such route; see /docs") })
        .method_not_allowed_fallback(|| async { ApiError::new(ErrorCode::MethodNotAllowed, "this route does not answer that method; see /docs") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(problem::ensure_problem))
        .layer(middleware::from_fn_with_state(
            (body_limit, state.config.server.statement_limit_bytes),
            refuse_declared_oversize,
        ))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_panic| ApiError::internal("a handler panicked").into_response()))
        .layer(middleware::from_fn(problem::log_server_errors))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %request.method(), path = ?request.uri().path(), request_id = %request_id, tenant.id = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::from_fn(drop_unsafe_request_id))
        .with_state(state)
}

/// A body whose declared `Content-Length` is over its route's limit is 413 at once, before
/// a byte of it is read (else a client declaring a terabyte and sending seven bytes holds
/// the request until its timeout). The limit read while the body streams still applies.
async fn refuse_declared_oversize(
    State((general, statements)): State<(usize, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = match request.extensions().get::<MatchedPath>() {
        Some(path)
            if path.as_str().ends_with("/statements/{period}")
                || path.as_str() == crate::console::STATEMENT_UPLOAD =>
        {
            statements
        }
        _ => general,
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::new(
            ErrorCode::TooLarge,
            format!("the request body is declared larger than this route accepts ({limit} bytes)"),
        )
        .into_response();
    }
    next.run(request).await
}

/// The longest client `x-request-id` kept.
const MAX_REQUEST_ID: usize = 64;

/// Keeps a client's `x-request-id` only when it is 1 to 64 of `A-Z a-z 0-9 . _ : -`; any
/// other is dropped, so one is generated: a request id goes into logs and the audit log,
/// and must not be able to forge their lines.
async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    let safe = |v: &HeaderValue| {
        let b = v.as_bytes();
        (1..=MAX_REQUEST_ID).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    };
    if request
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !safe(v))
    {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

async fn request_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request took longer than the broker allows",
        )
        .with_retry_after(Duration::from_secs(1))
        .into_response(),
    }
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("alliance_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("alliance_http_request_duration_seconds", "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    response
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
