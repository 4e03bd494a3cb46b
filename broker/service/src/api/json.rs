//! Strict JSON request bodies: syntax errors are 400 `validation.invalid_json`, unknown or
//! ill-typed fields 422 `validation.invalid_field` naming the field, a body over the limit
//! 413 `request.too_large`, a body that is not JSON 415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

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
        // A body is read as sent: a compressed (or otherwise encoded) one is refused rather
        // than parsed as if it were plain JSON.
        if let Some(encoding) = req.headers().get(header::CONTENT_ENCODING) {
            if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body without Content-Encoding",
                ));
            }
        }
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(super::extract::body_rejection)?;
        parse(&bytes)
    }
}

/// Parses bytes strictly.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<StrictJson<T>, ApiError> {
    // One pass: the JSON value, with a key given twice refused (a gateway in front may read
    // the first where a last-wins parser keeps the last).
    let CanonicalJson(canonical) = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    if !canonical.is_object() {
        // Every request body of the API is an object.
        return Err(ApiError::invalid_field("`body` must be an object"));
    }
    let value = serde_path_to_error::deserialize(canonical.clone())
        .map_err(|e| ApiError::invalid_field(field_problem(&e.path().to_string(), e.inner())))?;
    Ok(StrictJson { value, canonical })
}

/// A JSON value in which no object names a key twice.
struct CanonicalJson(serde_json::Value);

impl<'de> serde::Deserialize<'de> for CanonicalJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(CanonicalJsonVisitor)
            .map(CanonicalJson)
    }
}

struct CanonicalJsonVisitor;

impl<'de> serde::de::Visitor<'de> for CanonicalJsonVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(CanonicalJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let CanonicalJson(value) = map.next_value()?;
            if object.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!(
                    "the key `{shown}` is given twice"
                )));
            }
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Says which field broke which rule, in the broker's words: never serde's own message
/// (no Rust type names, no `unknown variant`, no line and column).
pub(crate) fn field_problem(path: &str, error: &dyn std::fmt::Display) -> String {
    let message = error.to_string();
    let quoted = |text: &str| text.split('`').nth(1).map(str::to_owned);
    let at = |field: &str| {
        if path.is_empty() || path == "." {
            field.to_owned()
        } else if field.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = quoted(rest).unwrap_or_default();
        return format!("`{}` is required", at(&field));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // The path already ends at the unknown field.
        let field = quoted(rest).unwrap_or_default();
        let named = if path.ends_with(&field) {
            path.to_owned()
        } else {
            at(&field)
        };
        return format!("`{named}` is not a field of this request");
    }
    let field = if path.is_empty() || path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    let expected = message
        .split(", expected ")
        .nth(1)
        .map(|e| e.split(" at line ").next().unwrap_or(e).trim().to_owned())
        .unwrap_or_default();
    if message.starts_with("unknown variant ") {
        // serde lists the variants quoted: "expected `a` or `b`", "expected one of `a`, `b`".
        let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return format!("`{field}` must be one of: {}", allowed.join(", "));
    }
    let wanted = match expected.as_str() {
        e if e.starts_with('u') && e[1..].parse::<u8>().is_ok() => {
            "a non-negative integer in range"
        }
        e if e.starts_with('i') && e[1..].parse::<u8>().is_ok() => "an integer in range",
        e if e.starts_with('f') && e[1..].parse::<u8>().is_ok() => "a number",
        "a string" | "a borrowed string" | "a str" => "a string",
        "a boolean" => "true or false",
        "a sequence" => "an array",
        e if e.starts_with("struct ") || e == "a map" => "an object",
        _ => "a value of the documented type",
    };
    format!("`{field}` must be {wanted}")
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

/// A resource or tenant name: the text rule, at most 128 characters.
pub fn name(value: &str) -> Result<String, ApiError> {
    text("name", value, 128)
}

/// A field a person types, under the one text rule (`alliance_core::check_text`).
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    alliance_core::check_text(value, max)
        .map_err(|e| ApiError::invalid_field(format!("`{field}`: {e}")))?;
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Body {
        name: String,
        size_gb: u32,
        kind: Option<Kind>,
        public_ip: Option<bool>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Tcp,
        Udp,
    }

    fn detail(body: &str) -> String {
        parse::<Body>(body.as_bytes()).expect_err("refused").detail
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"name": "a", "size_gb": 1, "name": "b"}"#,
            r#"{"name": "a", "size_gb": 1, "kind": null, "x": [{"k": 1, "k": 2}]}"#,
        ] {
            let error = parse::<serde_json::Value>(body.as_bytes()).expect_err(body);
            assert_eq!(error.code, crate::error::ErrorCode::InvalidJson, "{body}");
            assert!(error.detail.contains("given twice"), "{}", error.detail);
        }
        assert!(parse::<serde_json::Value>(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
    }

    #[test]
    fn field_errors_name_the_field_and_the_rule_never_serde() {
        let cases = [
            (r#"{"size_gb": 1}"#, "`name` is required"),
            (
                r#"{"name": "a", "size_gb": 1, "colour": 1}"#,
                "`colour` is not a field of this request",
            ),
            (
                r#"{"name": "a", "size_gb": -1}"#,
                "`size_gb` must be a non-negative integer in range",
            ),
            (
                r#"{"name": "a", "size_gb": "ten"}"#,
                "`size_gb` must be a non-negative integer in range",
            ),
            (r#"{"name": 7, "size_gb": 1}"#, "`name` must be a string"),
            (
                r#"{"name": "a", "size_gb": 1, "kind": "sctp"}"#,
                "`kind` must be one of: tcp, udp",
            ),
            (
                r#"{"name": "a", "size_gb": 1, "public_ip": "yes"}"#,
                "`public_ip` must be true or false",
            ),
            (r#"[1]"#, "`body` must be an object"),
        ];
        for (body, want) in cases {
            let got = detail(body);
            assert_eq!(got, want, "{body}");
            for internal in ["line", "column", "variant", "u32", "invalid type"] {
                assert!(!got.contains(internal), "{got}");
            }
        }
    }
}
