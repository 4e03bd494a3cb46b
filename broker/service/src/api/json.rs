//! Strict JSON request bodies: syntax errors are 400 `validation.invalid_json`, unknown or
//! ill-typed fields 422 `validation.invalid_field` naming the field, a body over the limit
//! 413 `request.too_large`, a body that is not JSON 415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A parsed body, with its canonical JSON value (used for idempotency fingerprints).
#[derive(Debug, Clone)]
pub struct StrictJson<T> {
    /// The typed body.
    pub value: T,
    /// The body as canonical JSON (keys sorted).
    pub canonical: serde_json::Value,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "validation.unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request.too_large",
                    "the request body is larger than the broker accepts",
                )
            } else {
                ApiError::invalid_json(format!("cannot read the body: {rejection}"))
            }
        })?;
        parse(&bytes)
    }
}

/// Parses bytes strictly.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<StrictJson<T>, ApiError> {
    let canonical: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    let value = serde_json::from_value(canonical.clone())
        .map_err(|e| ApiError::invalid_field(format!("invalid body: {e}")))?;
    Ok(StrictJson { value, canonical })
}

/// Parses an optional field with `parse`, naming the field in the error.
pub fn field<T, E: std::fmt::Display>(
    name: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| parse(v).map_err(|e| ApiError::invalid_field(format!("`{name}`: {e}"))))
        .transpose()
}

/// A resource name: 1 to 128 characters, no control characters.
pub fn name(value: &str) -> Result<String, ApiError> {
    if value.is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "`name`: use 1 to 128 characters without control characters",
        ));
    }
    Ok(value.to_owned())
}
