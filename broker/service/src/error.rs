//! One error vocabulary for the whole broker: a closed set of codes, each with its status.
//!
//! Every problem the API can send carries a [`ErrorCode`] from the enum below (the list in
//! `docs/api.md` is checked against it by a test). Services return an [`ApiError`] (or an
//! error of their own that converts into one); only `api/problem.rs` turns it into an HTTP
//! response, and only the API's middleware logs a 5xx, once, with its cause chain. This
//! module knows nothing of HTTP frameworks: a status is a number here.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal),)*) => {
        /// The closed set of problem codes: the `code` member of every problem document.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable machine code, e.g. `placement.no_eligible_member`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status a problem with this code is answered with.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// The code named by a string, if it is one of ours.
            pub fn parse(code: &str) -> Option<Self> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    /// No token, or a token that does not verify.
    InvalidToken = ("auth.invalid_token", 401),
    /// The token's roles do not grant the action.
    Forbidden = ("auth.forbidden", 403),
    /// The body is not JSON, or not an object of the expected shape.
    InvalidJson = ("validation.invalid_json", 400),
    /// A field is valid JSON that the rules refuse.
    InvalidField = ("validation.invalid_field", 422),
    /// A query parameter is malformed.
    InvalidQuery = ("validation.invalid_query", 400),
    /// The body is not sent as `application/json`.
    UnsupportedMediaType = ("validation.unsupported_media_type", 415),
    /// Unknown, or another tenant's (never revealed).
    NotFound = ("resource.not_found", 404),
    /// The resource's state forbids the change.
    Conflict = ("resource.conflict", 409),
    /// No route has this path.
    RouteNotFound = ("route.not_found", 404),
    /// The route does not answer this method.
    MethodNotAllowed = ("route.method_not_allowed", 405),
    /// The body is over the route's limit.
    TooLarge = ("request.too_large", 413),
    /// The request could not be read as HTTP (a malformed request line or header, a path
    /// that is not UTF-8 once percent-decoded).
    MalformedRequest = ("request.malformed", 400),
    /// The request line is longer than the broker reads.
    UriTooLong = ("request.uri_too_long", 414),
    /// The request's headers are larger than the broker reads.
    HeadersTooLarge = ("request.headers_too_large", 431),
    /// The request took longer than `server.request_timeout_ms`.
    RequestTimeout = ("request.timeout", 503),
    /// The tenant sent more requests than its rate allows.
    RateLimited = ("request.rate_limited", 429),
    /// The `Idempotency-Key` header is present but not 1 to 255 visible ASCII characters.
    InvalidIdempotencyKey = ("idempotency.invalid_key", 400),
    /// The key was used with a different request.
    IdempotencyKeyReused = ("idempotency.key_reused", 422),
    /// The first request with this key is still running.
    IdempotencyInFlight = ("idempotency.in_flight", 409),
    /// The requested jurisdiction is outside the tenant's policy.
    JurisdictionNotAllowed = ("placement.jurisdiction_not_allowed", 422),
    /// No member passes every filter.
    NoEligibleMember = ("placement.no_eligible_member", 422),
    /// A volume and its instance would be at different members.
    NotColocated = ("placement.not_colocated", 422),
    /// The resource's member does not offer what was asked (an action, attachment, URLs).
    MemberUnsupported = ("member.unsupported", 422),
    /// Every member that could hold the resource is down.
    MemberUnavailable = ("member.unavailable", 503),
    /// The member refused a change of lifecycle state.
    MemberInvalidTransition = ("member.invalid_transition", 409),
    /// The member still holds resources.
    MemberHasResources = ("member.has_resources", 409),
    /// An operation ran out of time at the member.
    MemberTimeout = ("member.timeout", 504),
    /// The member reported the resource failed.
    MemberResourceFailed = ("member.resource_failed", 502),
    /// The member refused for lack of quota.
    MemberOverQuota = ("member.over_quota", 502),
    /// The member refused the broker's credentials.
    MemberAuthFailed = ("member.auth_failed", 502),
    /// The member refused the request as invalid.
    MemberRejected = ("member.rejected", 502),
    /// The member failed in another way.
    MemberError = ("member.error", 502),
    /// The application is not awaiting approval.
    ApplicationNotApprovable = ("partner_application.not_approvable", 409),
    /// The application can no longer be rejected.
    ApplicationNotRejectable = ("partner_application.not_rejectable", 409),
    /// A partner endpoint points outside `allowed_member_networks`.
    EndpointNotAllowed = ("security.endpoint_not_allowed", 422),
    /// A statement is not valid FOCUS.
    StatementInvalid = ("statement.invalid", 422),
    /// No statement exists for the period.
    StatementMissing = ("statement.missing", 422),
    /// An invoice needs a reference rate the configured rates do not hold.
    InvoiceRatesMissing = ("invoice.rates_missing", 422),
    /// A tenant's new policy would leave some of its resources outside it.
    TenantResourcesOutsidePolicy = ("tenant.resources_outside_policy", 409),
    /// The database is unavailable.
    StoreUnavailable = ("store.unavailable", 503),
    /// A bug or an unexpected failure; the cause is logged, never sent.
    Internal = ("internal", 500),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

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
    /// The stable code (its status comes with it).
    pub code: ErrorCode,
    /// The human detail (never secrets, never internals).
    pub detail: String,
    /// Seconds the client should wait, sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Extra problem members.
    pub extensions: Option<serde_json::Value>,
    /// The cause of a 5xx, logged once by the API's middleware and never sent.
    pub cause: Option<String>,
}

impl ApiError {
    /// A new error with a code and detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after: None,
            extensions: None,
            cause: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
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
        Self::new(ErrorCode::InvalidToken, detail)
    }

    /// 403 `auth.forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    /// 404 `resource.not_found`: unknown, or another tenant's.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} `{id}` does not exist"))
    }

    /// 400 `validation.invalid_json`.
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidJson, detail)
    }

    /// 422 `validation.invalid_field`.
    pub fn invalid_field(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidField, detail)
    }

    /// 400 `validation.invalid_query`.
    pub fn invalid_query(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidQuery, detail)
    }

    /// 409 `resource.conflict`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    /// 500 `internal`: a generic detail; the cause is kept for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut error = Self::new(
            ErrorCode::Internal,
            "the broker failed to handle the request; it has been logged",
        );
        error.cause = Some(cause.to_string());
        error
    }

    /// 503 `store.unavailable`; the cause is kept for the log.
    pub fn store_unavailable(cause: impl std::fmt::Display) -> Self {
        let mut error = Self::new(
            ErrorCode::StoreUnavailable,
            "the broker's database is unavailable; retry later",
        )
        .with_retry_after(Duration::from_secs(1));
        error.cause = Some(cause.to_string());
        error
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        problem_document(
            self.code,
            &self.detail,
            match &self.extensions {
                Some(serde_json::Value::Object(map)) => map.clone(),
                _ => serde_json::Map::new(),
            },
        )
    }

    /// The problem document as JSON bytes.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.problem()).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// The problem document for a code and detail: the one place its members are written
/// (API answers and the errors stored on failed operations alike).
pub fn problem_document(
    code: ErrorCode,
    detail: &str,
    extensions: serde_json::Map<String, serde_json::Value>,
) -> Problem {
    Problem {
        kind: format!("urn:alliance:problem:{code}"),
        title: reason_phrase(code.status()).to_owned(),
        status: code.status(),
        detail: detail.to_owned(),
        code: code.as_str().to_owned(),
        extensions,
    }
}

/// The reason phrase of the statuses the broker uses.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Unavailable(e) => Self::store_unavailable(e),
            // A uniqueness the database enforces and a check-then-insert missed (two racing
            // requests) is the client's conflict, never a 500.
            crate::store::StoreError::Database(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::UniqueViolation =>
            {
                Self::conflict(
                    "another request created the same thing at the same time; read it, or retry",
                )
            }
            other => Self::internal(error_chain(&other)),
        }
    }
}

impl From<crate::billing::StatementError> for ApiError {
    fn from(err: crate::billing::StatementError) -> Self {
        match err {
            crate::billing::StatementError::Store(e) => e.into(),
            member @ crate::billing::StatementError::Member(_) => {
                Self::new(ErrorCode::MemberUnavailable, member.to_string())
                    .with_retry_after(Duration::from_secs(5))
            }
        }
    }
}

/// An error and its sources, joined by `: ` (for logs only).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The result type of services and handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_dotted_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert!(
                code.as_str() == "internal" || code.as_str().contains('.'),
                "{code} is not dotted"
            );
            assert!((400..600).contains(&code.status()));
            assert_ne!(reason_phrase(code.status()), "Error", "{code}");
        }
    }

    #[test]
    fn internal_errors_never_send_their_cause() {
        let error = ApiError::internal("password=hunter2 in sqlx");
        let body = String::from_utf8(error.body()).expect("utf-8");
        assert!(!body.contains("hunter2"));
        assert_eq!(error.cause.as_deref(), Some("password=hunter2 in sqlx"));
        assert_eq!(error.status(), 500);
    }
}
