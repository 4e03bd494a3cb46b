//! The edge of every request: one middleware, outermost, that does what each request needs
//! on its way in and out, in this order:
//!
//! - a client `x-request-id` is kept only when it is safe to log (else one is generated),
//!   and the answer carries it back;
//! - a tracing span for the request (method, path, request id, and the tenant once known);
//! - headers larger than [`MAX_HEADER_BYTES`] in all are 431 at once, and a body whose
//!   declared `Content-Length` is over its route's limit is 413 at once;
//! - the request timeout (503 problem), and a handler's panic caught (500 problem);
//! - any error answer still without a problem document is made one;
//! - every 5xx is logged once with its cause; the request is counted and timed.
//!
//! They were one middleware each; on the read path their boxed futures and cloned services
//! cost more than the handler (`docs/benchmarks.md`), so they are one function here.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use metrics::{Counter, Histogram};
use tracing::Instrument;

use crate::error::{ApiError, ErrorCode};

/// The longest client `x-request-id` kept.
const MAX_REQUEST_ID: usize = 64;

/// The most a request's headers may take, names and values with `": "` and CRLF each
/// (64 KiB; AWS's load balancers take the same, nginx's defaults less).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The size of `headers` as sent on HTTP/1.1.
fn header_bytes(headers: &axum::http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// What the edge needs from the config, and the request metrics' handles.
#[derive(Debug, Clone)]
pub struct Edge {
    /// `server.request_timeout_ms`.
    pub timeout: Duration,
    /// `server.body_limit_bytes`.
    pub body_limit: usize,
    /// `server.statement_limit_bytes`: the routes that take statements.
    pub statement_limit: usize,
    /// Registered once per route, method and status.
    pub handles: Arc<Handles>,
}

/// The most method and status pairs kept per route (any method can be sent).
const KEPT_PER_ROUTE: usize = 64;

/// The handles of `alliance_http_requests_total` and `alliance_http_request_duration_seconds`
/// by route, method and status: a request records through them without building and
/// hashing its label set in the registry.
#[derive(Debug, Default)]
pub struct Handles {
    by_route: RwLock<HashMap<String, Vec<Kept>>>,
}

/// One route's handles for a method and a status.
type Kept = (Method, u16, Counter, Histogram);

impl Handles {
    fn record(&self, method: &Method, route: Option<&MatchedPath>, status: u16, seconds: f64) {
        let route = route.map_or("unmatched", MatchedPath::as_str);
        if let Ok(kept) = self.by_route.read() {
            let found = kept.get(route).and_then(|pairs| {
                pairs
                    .iter()
                    .find(|(m, s, _, _)| m == method && *s == status)
            });
            if let Some((_, _, counter, histogram)) = found {
                counter.increment(1);
                histogram.record(seconds);
                return;
            }
        }
        let labels = |with_status: bool| {
            let mut labels = vec![
                metrics::Label::new("method", method_label(method)),
                metrics::Label::new("route", route.to_owned()),
            ];
            if with_status {
                labels.push(metrics::Label::new("status", status.to_string()));
            }
            labels
        };
        let counter = metrics::counter!("alliance_http_requests_total", labels(true));
        let histogram =
            metrics::histogram!("alliance_http_request_duration_seconds", labels(false));
        counter.increment(1);
        histogram.record(seconds);
        if let Ok(mut kept) = self.by_route.write() {
            let pairs = kept.entry(route.to_owned()).or_default();
            if pairs.len() < KEPT_PER_ROUTE {
                pairs.push((method.clone(), status, counter, histogram));
            }
        }
    }
}

/// A client's `x-request-id` is kept only when it is 1 to 64 of `A-Z a-z 0-9 . _ : -`: a
/// request id goes into logs and the audit log, and must not be able to forge their lines.
fn safe_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=MAX_REQUEST_ID).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
}

/// A new request id: a random (version 4) UUID from the thread's generator, without a
/// system call per request.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buffer))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The route's body limit: statements have their own.
fn body_limit(edge: &Edge, route: Option<&MatchedPath>) -> usize {
    match route {
        Some(path)
            if path.as_str().ends_with("/statements/{period}")
                || path.as_str() == crate::console::STATEMENT_UPLOAD =>
        {
            edge.statement_limit
        }
        _ => edge.body_limit,
    }
}

/// The method as a static label (no allocation for the standard ones).
fn method_label(method: &Method) -> metrics::SharedString {
    match *method {
        Method::GET => "GET".into(),
        Method::POST => "POST".into(),
        Method::PUT => "PUT".into(),
        Method::PATCH => "PATCH".into(),
        Method::DELETE => "DELETE".into(),
        Method::HEAD => "HEAD".into(),
        Method::OPTIONS => "OPTIONS".into(),
        ref other => other.as_str().to_owned().into(),
    }
}

/// The middleware; see the module.
pub async fn edge(State(edge): State<Edge>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match request.headers().get("x-request-id") {
        Some(v) if safe_request_id(v) => v.clone(),
        _ => {
            let id = new_request_id();
            request.headers_mut().insert("x-request-id", id.clone());
            id
        }
    };
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = ?request.uri().path(),
        request_id = %request_id.to_str().unwrap_or(""),
        tenant.id = tracing::field::Empty
    );
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let limit = body_limit(&edge, route.as_ref());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let headers_size = header_bytes(request.headers());
    let mut response = async move {
        if headers_size > MAX_HEADER_BYTES {
            let mut refused = ApiError::new(
                ErrorCode::HeadersTooLarge,
                format!("the request's headers take more than {MAX_HEADER_BYTES} bytes"),
            )
            .into_response();
            // As hyper does for its own 431: the connection is not kept for more.
            refused
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return refused;
        }
        if declared.is_some_and(|n| n > limit as u64) {
            return ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "the request body is declared larger than this route accepts ({limit} bytes)"
                ),
            )
            .into_response();
        }
        let handled = AssertUnwindSafe(next.run(request)).catch_unwind();
        let response = match tokio::time::timeout(edge.timeout, handled).await {
            Ok(Ok(response)) => response,
            Ok(Err(_panic)) => ApiError::internal("a handler panicked").into_response(),
            Err(_) => ApiError::new(
                ErrorCode::RequestTimeout,
                "the request took longer than the broker allows",
            )
            .with_retry_after(Duration::from_secs(1))
            .into_response(),
        };
        let mut response = super::problem::ensure_problem(response);
        super::problem::log_server_error(&mut response);
        response
    }
    .instrument(span)
    .await;
    edge.handles.record(
        &method,
        route.as_ref(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response.headers_mut().insert("x-request-id", request_id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_safe_and_new_ones_are_uuids() {
        assert!(safe_request_id(&HeaderValue::from_static("abc-1.2_3:4")));
        assert!(!safe_request_id(&HeaderValue::from_static("")));
        assert!(!safe_request_id(&HeaderValue::from_static("a b")));
        assert!(!safe_request_id(
            &HeaderValue::from_str(&"a".repeat(65)).expect("header")
        ));
        let one = new_request_id();
        let two = new_request_id();
        assert_ne!(one, two);
        let parsed = uuid::Uuid::parse_str(one.to_str().expect("ascii")).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 4);
        assert!(safe_request_id(&one));
    }
}
