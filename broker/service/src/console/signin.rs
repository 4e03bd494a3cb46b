//! Signing in and out: the development sign-in (only while the development issuer is on),
//! and the CSRF check every state-changing form goes through.

use alliance_core::TenantId;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::pages::layout;
use super::session::{Session, DEV_CONSOLE_ISSUER};
use super::{cookie, over_tls, PageError, PageResult, Visitor};
use crate::auth::Role;
use crate::error::ApiError;
use crate::state::AppState;

/// `/console/login`: the development sign-in while its issuer is on, and each issuer of
/// the config that names a console client.
pub async fn login(State(state): State<AppState>) -> Html<String> {
    let dev = state.config.auth.dev_issuer.enabled;
    let issuers = super::oidc::console_issuers(&state);
    layout(
        "Sign in",
        None,
        html! {
            @for (n, issuer) in &issuers {
                form method="get" action={ "/console/login/oidc/" (n) } class="stack" {
                    label { "Account (optional) " input type="text" name="login_hint" autocomplete="username"; }
                    button type="submit" { "Sign in with " (issuer.issuer) }
                }
            }
            @if dev { p { a class="button" href="/console/login/dev" { "Development sign-in" } } }
            @if issuers.is_empty() && !dev {
                p { "No sign-in is configured for the console: name a `console_client_id` in an `[[auth.issuers]]` entry." }
            }
        },
    )
}

fn dev_enabled(state: &AppState) -> Result<(), PageError> {
    if state.config.auth.dev_issuer.enabled {
        Ok(())
    } else {
        Err(PageError(ApiError::forbidden(
            "the development sign-in exists only while the development issuer is enabled",
        )))
    }
}

const DEV_ROLES: [&str; 5] = [
    "tenant-admin",
    "tenant-user",
    "operator",
    "billing",
    "partner",
];

/// `GET /console/login/dev`: the development sign-in form (only with the dev issuer on).
pub async fn dev_form(State(state): State<AppState>) -> PageResult {
    dev_enabled(&state)?;
    let tenants = state.store.tenants(None, 500).await?;
    Ok(layout(
        "Development sign-in",
        None,
        html! {
            form method="post" action="/console/login/dev" class="stack" {
                label { "Tenant " select name="tenant" { option value="" { "(none)" } @for t in &tenants { option value=(t.policy.id.as_str()) { (t.policy.id.as_str()) " · " (t.name) } } } }
                label { "Role " select name="role" { @for r in DEV_ROLES { option value=(r) { (r) } } } }
                button type="submit" { "Sign in" }
            }
        },
    )
    .into_response())
}

/// The development sign-in form.
#[derive(Debug, Deserialize)]
pub struct DevSignIn {
    tenant: String,
    role: String,
}

/// `POST /console/login/dev`: a session for the chosen tenant and role.
pub async fn dev_sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<DevSignIn>,
) -> PageResult {
    dev_enabled(&state)?;
    // Signed in only from this console's own form: another site's page posting here
    // (login CSRF) is refused.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() != b"same-origin" && v.as_bytes() != b"none")
    {
        return Err(PageError(ApiError::forbidden(
            "the development sign-in is posted from the console's own page only",
        )));
    }
    let role = Role::parse(&form.role).ok_or_else(|| {
        PageError(ApiError::invalid_field(format!(
            "`role`: `{}` is not a role",
            form.role
        )))
    })?;
    let tenant = match form.tenant.trim() {
        "" => None,
        t => Some(
            TenantId::parse(t)
                .map_err(|e| PageError(ApiError::invalid_field(format!("`tenant`: {e}"))))?,
        ),
    };
    if !DEV_ROLES.contains(&role.as_str()) {
        return Err(PageError(ApiError::invalid_field(format!(
            "`role`: the console has no pages for {}",
            role.as_str()
        ))));
    }
    if role.is_tenant_role() {
        let Some(t) = &tenant else {
            return Err(PageError(ApiError::invalid_field(
                "a tenant role needs a tenant",
            )));
        };
        crate::tenancy::get(&state, t).await?;
    }
    let subject = match &tenant {
        Some(t) if role.is_tenant_role() => format!("dev:console:{}@{}", role.as_str(), t.as_str()),
        _ => format!("dev:console:{}", role.as_str()),
    };
    let now = state.clock.now_ms() / 1000;
    let session = Session::new(
        DEV_CONSOLE_ISSUER,
        subject,
        vec![role.as_str().to_owned()],
        tenant
            .filter(|_| role.is_tenant_role())
            .map(|t| t.to_string()),
        now,
    );
    let sealed = state.console_key.seal(&session);
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console".to_owned()),
            (
                header::SET_COOKIE,
                cookie(&sealed, over_tls(&headers), super::session::LIFETIME_SECS),
            ),
        ],
    )
        .into_response())
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    pub(super) csrf: String,
}

pub(super) fn check_csrf(visitor: &Visitor, token: &str) -> Result<(), PageError> {
    if visitor.session.csrf_matches(token) {
        Ok(())
    } else {
        Err(PageError(ApiError::forbidden(
            "the form's CSRF token does not match your session: reload the page",
        )))
    }
}

/// `POST /console/logout`.
pub async fn sign_out(
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/console/login".to_owned()),
            (header::SET_COOKIE, cookie("", over_tls(&headers), 0)),
        ],
    )
        .into_response())
}
