//! The one renderer of problem+json, the one log of server errors, and replies.
//!
//! [`ApiError`] becomes an RFC 9457 response here and nowhere else. A 5xx keeps its cause in
//! the response's extensions; [`log_server_errors`] (a middleware inside the request span)
//! logs it once, with the request id, and removes it, so the cause never reaches the wire.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, PROBLEM_JSON};
use crate::store::StoredResponse;

/// The cause of a server error, carried from the renderer to the log middleware.
#[derive(Debug, Clone)]
struct ServerErrorCause(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.code == crate::error::ErrorCode::InvalidToken {
            // RFC 6750 §3: a 401 names the scheme it wants.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"alliance\""),
            );
        }
        if let Some(after) = self.retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status.is_server_error() {
            response.extensions_mut().insert(ServerErrorCause(
                self.cause.unwrap_or_else(|| self.detail.clone()),
            ));
        }
        response
    }
}

/// Logs every 5xx once, with its cause when the broker produced it.
pub async fn log_server_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status().is_server_error() {
        let cause = response.extensions_mut().remove::<ServerErrorCause>();
        let status = response.status().as_u16();
        match cause {
            Some(ServerErrorCause(cause)) => {
                tracing::error!(status, error = %cause, "request failed")
            }
            None => tracing::error!(status, "request failed"),
        }
    }
    response
}

/// A reply kept by the services (a resource's 202, a replayed first response) as sent.
pub fn reply(stored: &StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body.clone()).into_response();
    let content_type = if status.is_success() {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(location) = stored
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Runs a creating POST under its `Idempotency-Key` (when sent) and sends its reply: the
/// first response, or its replay.
pub async fn idempotent(
    state: &crate::state::AppState,
    principal: &crate::auth::Principal,
    facts: &crate::idempotency::RequestFacts,
    uri: &axum::extract::OriginalUri,
    canonical: &serde_json::Value,
    action: impl std::future::Future<Output = crate::error::ApiResult<StoredResponse>>,
) -> crate::error::ApiResult<Response> {
    let stored = crate::idempotency::with_idempotency_key(
        state,
        principal,
        facts,
        uri.path(),
        canonical,
        action,
    )
    .await?;
    Ok(reply(&stored))
}
