//! The web console at `/console`: server-rendered HTML (maud), one small same-origin script
//! (`static/console.js`, for live operation status), the map drawn as SVG from country
//! shapes the repository holds (`europe.txt`, from Natural Earth through npm `world-atlas`,
//! `scripts/console-map.py`). It is served by the broker itself: no other server, no CDN,
//! nothing fetched at run time.
//!
//! Sign-in makes a [`session::Session`] cookie (`HttpOnly; SameSite=Strict`, `Secure`
//! behind TLS) that holds no bearer token. Every page turns the session into the same
//! [`Principal`] a token gives and checks it with [`Authorized::grant`], the API's one
//! permission check, then calls the same services as the API: there is no second path
//! around authorization. State-changing forms carry the session's CSRF token, and every
//! answer carries a strict Content-Security-Policy (no inline script or style).

pub mod billing;
pub mod create;
pub mod map;
pub mod oidc;
pub mod operators;
pub mod pages;
pub mod session;
pub mod signin;
pub mod usable;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use session::Session;

/// The console's policy: same-origin everything, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The statement upload form's route (statements have their own body limit).
pub const STATEMENT_UPLOAD: &str = "/console/statements";

/// The console's routes, under `/console`; `statement_limit` bounds statement uploads.
pub fn router(statement_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/login", get(signin::login))
        .route(
            "/console/login/dev",
            get(signin::dev_form).post(signin::dev_sign_in),
        )
        .route("/console/login/oidc/callback", get(oidc::callback))
        .route("/console/login/oidc/{n}", get(oidc::start))
        .route("/console/logout", post(signin::sign_out))
        .route(
            "/console/resources",
            get(pages::resources).post(create::create),
        )
        .route("/console/resources/{id}", get(pages::resource))
        .route("/console/resources/{id}/actions", post(usable::action))
        .route("/console/resources/{id}/urls", post(usable::url))
        .route(
            "/console/ssh-keys",
            get(usable::ssh_keys).post(usable::add_key),
        )
        .route("/console/ssh-keys/{name}/delete", post(usable::delete_key))
        .route("/console/new", get(create::form))
        .route("/console/buckets/new", get(create::form))
        .route("/console/operations/{id}", get(pages::operation))
        .route(
            "/console/operations/{id}/status",
            get(pages::operation_status),
        )
        .route(
            "/console/reconciliations",
            get(billing::books).post(billing::run),
        )
        .route("/console/reconciliations/{id}", get(billing::report))
        .route(
            "/console/reconciliations/{id}/report.json",
            get(billing::report_json),
        )
        .route(
            "/console/reconciliations/{id}/report.csv",
            get(billing::report_csv),
        )
        .route(
            STATEMENT_UPLOAD,
            post(billing::upload).layer(axum::extract::DefaultBodyLimit::max(statement_limit)),
        )
        .route("/console/members", get(operators::members))
        .route("/console/applications", get(operators::applications))
        .route("/console/applications/{id}", get(operators::application))
        .route(
            "/console/applications/{id}/decision",
            post(operators::decide),
        )
        .route("/console/tenants", get(operators::tenants))
        .route("/console/audit", get(operators::audit))
        .route(
            "/console/members/{id}/confirm",
            get(operators::confirm_lifecycle),
        )
        .route(
            "/console/members/{id}/lifecycle",
            post(operators::lifecycle),
        )
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .layer(middleware::from_fn(headers))
}

/// Security headers on every console answer.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("static/console.css"),
    )
}

async fn script() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("static/console.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A signed-in visitor: the session and the principal it acts as.
pub struct Visitor {
    /// The session (its CSRF token for forms).
    pub session: Session,
    /// Who the services see.
    pub principal: Principal,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let now = state.clock.now_ms() / 1000;
        let session =
            cookies(&parts.headers, session::COOKIE).find_map(|v| state.console_key.open(v, now));
        // A session outlives nothing that made it: a development session needs the development
        // issuer still on, another its issuer still configured.
        let session = session
            .filter(|s| {
                if s.iss == session::DEV_CONSOLE_ISSUER {
                    state.config.auth.dev_issuer.enabled
                } else {
                    state.config.auth.issuers.iter().any(|i| i.issuer == s.iss)
                }
            })
            .ok_or_else(|| Redirect::to("/console/login").into_response())?;
        let mut principal = session
            .principal()
            .ok_or_else(|| Redirect::to("/console/login").into_response())?;
        principal.request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        state
            .rate_limiter
            .check(&principal)
            .map_err(|e| page_error(&e))?;
        Ok(Self { session, principal })
    }
}

/// The `Set-Cookie` value for `sealed` (`Secure` when the request came over TLS).
pub fn cookie(sealed: &str, secure: bool, max_age: i64) -> String {
    format!(
        "{}={sealed}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the request reached the broker over TLS (directly or through a proxy that says
/// so), for the cookie's `Secure` flag.
pub fn over_tls(parts_headers: &axum::http::HeaderMap) -> bool {
    parts_headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The values of the cookies named `name` a request carries.
pub fn cookies<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A JSON value as the text a page shows (a string without its quotes, null as nothing).
pub fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The redirect to the page of the operation an accepted change answered with.
pub fn to_operation(stored: &crate::store::StoredResponse) -> PageResult {
    let op: serde_json::Value = serde_json::from_str(&stored.body).map_err(ApiError::internal)?;
    let id = op["id"]
        .as_str()
        .ok_or_else(|| ApiError::internal("an accepted change without its operation"))?;
    Ok(Redirect::to(&format!("/console/operations/{id}")).into_response())
}

/// An error as an HTML page with the error's status (the API's problem, for people).
pub fn page_error(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = if status.is_server_error() {
        "the broker failed to handle the request; it has been logged".to_owned()
    } else {
        error.detail.clone()
    };
    (
        status,
        Html(pages::error_page(
            status.as_u16(),
            error.code.as_str(),
            &detail,
        )),
    )
        .into_response()
}

/// `page_error` for the `?` of a handler.
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.0.status() >= 500 {
            tracing::error!(error = %self.0.cause.as_deref().unwrap_or(&self.0.detail), "console page failed");
        }
        page_error(&self.0)
    }
}

/// What a console handler returns.
pub type PageResult = Result<Response, PageError>;

/// The state, for handlers.
pub type St = State<AppState>;
