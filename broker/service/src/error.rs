//! One error vocabulary for the HTTP API, rendered once as RFC 9457 problem+json.
//!
//! Every error a handler can return is an [`ApiError`] with a stable machine `code` from
//! the closed set below; internals never reach the body (a 5xx is logged with its cause and
//! answered with a generic detail).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, as sent.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:alliance:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The stable machine code, e.g. `placement.no_eligible_member`.
    pub code: String,
    /// Extra members specific to the problem (e.g. the placement candidates), top-level
    /// as RFC 9457 says.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// An error answered to an API client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The human detail (never secrets, never internals).
    pub detail: String,
    /// Seconds the client should wait, sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Extra problem members.
    pub extensions: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error with a status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            extensions: None,
        }
    }

    /// Adds problem members.
    pub fn with_extensions(mut self, extensions: serde_json::Value) -> Self {
        self.extensions = Some(extensions);
        self
    }

    /// Adds `Retry-After`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// 401 `auth.invalid_token`.
    pub fn invalid_token(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "auth.invalid_token", detail)
    }

    /// 403 `auth.forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "auth.forbidden", detail)
    }

    /// 404 `resource.not_found`: unknown, or another tenant's.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource.not_found",
            format!("{what} `{id}` does not exist"),
        )
    }

    /// 400 `validation.invalid_json`.
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation.invalid_json", detail)
    }

    /// 422 `validation.invalid_field`.
    pub fn invalid_field(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation.invalid_field",
            detail,
        )
    }

    /// 400 `validation.invalid_query`.
    pub fn invalid_query(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation.invalid_query", detail)
    }

    /// 409 `resource.conflict`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "resource.conflict", detail)
    }

    /// 500 `internal`: logs the cause, answers a generic detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the broker failed to handle the request; it has been logged",
        )
    }

    /// 503 `store.unavailable`.
    pub fn store_unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "store unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store.unavailable",
            "the broker's database is unavailable; retry later",
        )
        .with_retry_after(Duration::from_secs(1))
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:alliance:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            extensions: match &self.extensions {
                Some(serde_json::Value::Object(map)) => map.clone(),
                _ => serde_json::Map::new(),
            },
        }
    }

    /// The problem document as JSON bytes.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.problem()).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Unavailable(e) => Self::store_unavailable(e),
            other => Self::internal(other),
        }
    }
}

impl From<crate::billing::StatementError> for ApiError {
    fn from(err: crate::billing::StatementError) -> Self {
        match err {
            crate::billing::StatementError::Store(e) => e.into(),
            member @ crate::billing::StatementError::Member(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "member.unavailable",
                member.to_string(),
            )
            .with_retry_after(Duration::from_secs(5)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
