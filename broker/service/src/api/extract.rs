//! Extractors whose rejections are problem+json, like every other error.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
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

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| {
                // axum says "Failed to deserialize query string: <serde's words>"; say which
                // parameter broke which rule instead.
                let text = e.body_text();
                let words = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // "<parameter>: <rule>" when serde knew which parameter it was.
                let (path, rule) = match words.split_once(": ") {
                    Some((path, rule)) if !path.contains(' ') && !path.contains('`') => {
                        (path, rule)
                    }
                    _ => ("", words),
                };
                ApiError::invalid_query(format!(
                    "query: {}",
                    super::json::field_problem(path, &rule)
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
