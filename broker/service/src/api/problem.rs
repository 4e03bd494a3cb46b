//! The one renderer of problem+json, the one log of server errors, and replies.
//!
//! [`ApiError`] becomes an RFC 9457 response here and nowhere else. A 5xx keeps its cause in
//! the response's extensions; [`log_server_error`] (called by the edge, inside the request span)
//! logs it once, with the request id, and removes it, so the cause never reaches the wire.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode, PROBLEM_JSON};
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

/// Logs a 5xx once, with its cause when the broker produced it (and removes the cause).
pub fn log_server_error(response: &mut Response) {
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
}

/// Any error answer that is not problem+json yet (an extractor of axum's refusing a path
/// that is not UTF-8 once percent-decoded, say) becomes one, with the code of its status:
/// every error the broker sends is problem+json.
pub fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    // The console's pages answer people, in HTML, and stay so.
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::BAD_REQUEST => (ErrorCode::MalformedRequest, "the request cannot be read (a path segment that is not UTF-8 once percent-decoded, or a malformed parameter)"),
        StatusCode::NOT_FOUND => (ErrorCode::RouteNotFound, "no such route; see /docs"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "this route does not answer that method; see /docs"),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::TooLarge, "the request body is larger than the broker accepts"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorCode::UnsupportedMediaType, "the body must be sent as application/json"),
        StatusCode::UNPROCESSABLE_ENTITY => (ErrorCode::InvalidField, "the request's fields are refused"),
        s if s.is_client_error() => (ErrorCode::MalformedRequest, "the request cannot be served as sent"),
        _ => return ApiError::internal(format!("an error answer without a problem document: {status}")).into_response(),
    };
    ApiError::new(code, detail).into_response()
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
