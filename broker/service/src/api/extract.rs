//! Extractors whose rejections are problem+json, like every other error.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::idempotency::RequestFacts;

impl<S: Send + Sync> FromRequestParts<S> for RequestFacts {
    type Rejection = ApiError;

    /// Reads `x-request-id`, `traceparent` and `Idempotency-Key`. The key is kept as sent:
    /// a present but malformed key is refused when it is claimed, never taken for none.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let text = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Self {
            request_id: text("x-request-id"),
            traceparent: text("traceparent"),
            idempotency_key: parts
                .headers
                .get("idempotency-key")
                .map(|v| v.as_bytes().to_vec()),
        })
    }
}

/// Query parameters; a bad or unknown parameter is 400 `validation.invalid_query`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Parsed here rather than by axum's `Query`, so that the failing parameter and the
        // rule come from serde as values, not out of axum's message text.
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                ApiError::invalid_query(format!(
                    "query: {}",
                    super::json::field_problem(&e.path().to_string(), e.inner())
                ))
            })
    }
}

/// A raw body; over the limit is 413 `request.too_large`.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(body_rejection)
    }
}

/// A body that could not be read: over the limit is 413 `request.too_large`, anything else
/// 400 `validation.invalid_json`.
pub(crate) fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::TooLarge,
            "the request body is larger than the broker accepts",
        )
    } else {
        ApiError::invalid_json(format!("cannot read the body: {rejection}"))
    }
}
