//! Using what a tenant created, from the console: SSH keys, instance actions, time-limited
//! object URLs for buckets (the bytes then go straight to the member), and the month's usage
//! by country. Each form calls the service the API route calls.

use std::collections::BTreeMap;

use alliance_core::{ResourceType, SizeName};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::pages::layout;
use super::signin::{check_csrf, CsrfOnly};
use super::{PageError, PageResult, Visitor};
use crate::auth::permissions::{ProvisionResources, ReadResources, ReadUsage};
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;

/// The month's usage of the visitor's tenant by country: cost per currency (members bill
/// in their own).
pub async fn usage_by_country(state: &AppState, visitor: &Visitor) -> Result<Markup, PageError> {
    let granted = Authorized::<ReadUsage>::grant(visitor.principal.clone())?;
    let scope = granted.principal.tenant_scope()?;
    let now = state.clock.now_ms();
    let period = alliance_core::billing::Period::parse(&alliance_core::billing::iso(now)[..7])
        .map_err(ApiError::internal)?;
    let books = crate::billing::Books::from_registry(&state.members);
    let usage = crate::billing::usage(
        &state.store,
        period,
        Some(scope.tenant().as_str()),
        None,
        &books.catalogues,
        now,
    )
    .await?;
    let mut by_country: BTreeMap<(String, String), (Decimal, usize)> = BTreeMap::new();
    for line in &usage.lines {
        let entry = by_country
            .entry((line.jurisdiction.to_string(), line.currency.clone()))
            .or_default();
        entry.0 += line.cost;
        entry.1 += 1;
    }
    Ok(html! {
        h2 { "This month's usage by country (" (period) ")" }
        table class="usage" {
            thead { tr { th { "Country" } th { "Cost" } th { "Currency" } th { "Lines" } } }
            tbody {
                @for ((country, currency), (cost, n)) in &by_country {
                    tr data-jurisdiction=(country) { td { (country) } td data-field="cost" { (cost.round_dp(6)) } td { (currency) } td { (n) } }
                }
                @if by_country.is_empty() { tr { td colspan="4" { "No usage yet this month." } } }
            }
        }
    })
}

/// `/console/ssh-keys`: the tenant's keys, a form to add one, and deletion.
pub async fn ssh_keys(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    let granted = Authorized::<ReadResources>::grant(visitor.principal.clone())?;
    let scope = granted.principal.tenant_scope()?;
    let keys = state.store.ssh_keys(&scope, None, 500).await?;
    let admin = Authorized::<ProvisionResources>::grant(visitor.principal.clone()).is_ok();
    let body = html! {
        table class="ssh-keys" {
            thead { tr { th { "Name" } th { "Fingerprint" } th { "Created" } @if admin { th {} } } }
            tbody {
                @for k in &keys {
                    tr data-key=(k.name) {
                        td { (k.name) } td { code { (k.fingerprint) } } td { (crate::time::rfc3339(k.created_at)) }
                        @if admin { td { form method="post" action={ "/console/ssh-keys/" (k.name) "/delete" } {
                            input type="hidden" name="csrf" value=(visitor.session.csrf);
                            button type="submit" class="danger" { "Delete" } } } }
                    }
                }
            }
        }
        @if admin {
            h2 { "Add a key" }
            form method="post" action="/console/ssh-keys" class="stack" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                label { "Name " input type="text" name="name" required maxlength="64"; }
                label { "OpenSSH public key " textarea name="public_key" rows="3" cols="70" required {} }
                button type="submit" { "Add" }
            }
        }
    };
    Ok(layout("SSH keys", Some(&visitor), body).into_response())
}

/// The add-key form.
#[derive(Debug, Deserialize)]
pub struct NewKey {
    csrf: String,
    name: String,
    public_key: String,
}

/// `POST /console/ssh-keys`.
pub async fn add_key(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<NewKey>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ProvisionResources>::grant(visitor.principal.clone())?;
    crate::ssh_keys::create(
        &state,
        &granted.principal,
        &form.name,
        form.public_key.trim(),
    )
    .await?;
    Ok(Redirect::to("/console/ssh-keys").into_response())
}

/// `POST /console/ssh-keys/{name}/delete`.
pub async fn delete_key(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ProvisionResources>::grant(visitor.principal.clone())?;
    crate::ssh_keys::delete(&state, &granted.principal, &name).await?;
    Ok(Redirect::to("/console/ssh-keys").into_response())
}

/// The forms of a resource's page: actions for an instance, URLs for a bucket.
pub fn resource_forms(
    visitor: &Visitor,
    view: &crate::api::views::ResourceView,
    sizes: &[String],
) -> Markup {
    let admin = Authorized::<ProvisionResources>::grant(visitor.principal.clone()).is_ok();
    let live = view.status == "active";
    html! {
        @if view.resource_type == "instance" && admin && live {
            h2 { "Actions" }
            form method="post" action={ "/console/resources/" (view.id) "/actions" } class="filters" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                button type="submit" name="action" value="start" { "Start" }
                button type="submit" name="action" value="stop" { "Stop" }
                button type="submit" name="action" value="reboot" { "Reboot" }
                label { "Size " select name="size" { option value="" { "(for a resize)" } @for s in sizes { option value=(s) { (s) } } } }
                button type="submit" name="action" value="resize" { "Resize" }
            }
        }
        @if view.resource_type == "bucket" && live {
            h2 { "A time-limited URL for an object" }
            form method="post" action={ "/console/resources/" (view.id) "/urls" } class="filters" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                label { "Object " input type="text" name="object" required maxlength="1024"; }
                label { "Method " select name="method" { option value="GET" { "GET" } @if admin { option value="PUT" { "PUT" } option value="DELETE" { "DELETE" } } } }
                label { "Valid for (s) " input type="number" name="expires_in" value="900" min="1" max="43200"; }
                button type="submit" { "Sign" }
            }
        }
    }
}

/// The action form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: String,
    action: String,
    #[serde(default)]
    size: String,
}

/// `POST /console/resources/{id}/actions`: the API's instance action; then its operation.
pub async fn action(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ProvisionResources>::grant(visitor.principal.clone())?;
    // The size select stands beside every button: only a resize sends it.
    let size = match (form.action.as_str(), form.size.trim()) {
        ("resize", s) if !s.is_empty() => {
            Some(SizeName::parse(s).map_err(|e| ApiError::invalid_field(format!("`size`: {e}")))?)
        }
        _ => None,
    };
    let change = crate::provisioning::actions::instance_change(&form.action, size.clone())?;
    let mut body = serde_json::json!({ "action": form.action });
    if let Some(s) = &size {
        body["size"] = serde_json::json!(s.to_string());
    }
    let facts = crate::idempotency::RequestFacts {
        request_id: granted.principal.request_id.clone(),
        ..Default::default()
    };
    let stored = crate::provisioning::actions::change(
        &state,
        &granted.principal,
        &facts,
        &format!("/v1/instances/{id}/actions"),
        &body,
        ResourceType::Instance,
        &id,
        change,
        crate::api::views::accepted,
    )
    .await?;
    super::to_operation(&stored)
}

/// The URL form.
#[derive(Debug, Deserialize)]
pub struct UrlForm {
    csrf: String,
    object: String,
    method: String,
    expires_in: Option<i64>,
}

/// `POST /console/resources/{id}/urls`: the API's signed URL, shown once (never logged).
pub async fn url(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<UrlForm>,
) -> PageResult {
    use alliance_adapter_api::ObjectMethod;
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ReadResources>::grant(visitor.principal.clone())?;
    let method = match form.method.as_str() {
        "GET" => ObjectMethod::Get,
        "PUT" => ObjectMethod::Put,
        "DELETE" => ObjectMethod::Delete,
        other => {
            return Err(PageError(ApiError::invalid_field(format!(
                "`method`: `{other}`"
            ))))
        }
    };
    if method != ObjectMethod::Get {
        Authorized::<ProvisionResources>::grant(visitor.principal.clone())?;
    }
    let request = crate::usable::url_request(method, &form.object, form.expires_in)?;
    let signed =
        crate::provisioning::actions::object_url(&state, &granted.principal, &id, &request).await?;
    let body = html! {
        p { (method.as_str()) " " code { (form.object) } ", until " (crate::time::rfc3339(signed.expires_at_ms)) ":" }
        p { textarea readonly rows="4" cols="90" data-field="url" { (signed.url) } }
        p { "The URL goes straight to the member; anyone holding it can use it until then." }
        p { a href={ "/console/resources/" (id) } { "Back to the bucket" } }
    };
    Ok(layout("Object URL", Some(&visitor), body).into_response())
}
