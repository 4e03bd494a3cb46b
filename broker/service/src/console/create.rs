//! The create form (`/console/new?type=…`): the country picker offers only the tenant's
//! allowed jurisdictions and, once one is picked, every member with whether placement
//! would take it and why; the creation is the API's own (`POST /v1/{instances,volumes,
//! buckets}`, parsed by the API's body types), then its operation.

use alliance_core::{ResourceType, SizeName};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::pages::layout;
use super::signin::check_csrf;
use super::{PageError, PageResult, Visitor};
use crate::api::views::EvaluationView;
use crate::auth::permissions::ProvisionResources;
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;

/// What was picked so far.
#[derive(Debug, Default, Deserialize)]
pub struct Picked {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    country: Option<String>,
}

fn type_of(text: Option<&str>) -> ResourceType {
    match text {
        Some("instance") => ResourceType::Instance,
        Some("volume") => ResourceType::Volume,
        _ => ResourceType::Bucket,
    }
}

/// `GET /console/new` (and `/console/buckets/new`).
pub async fn form(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(picked): Query<Picked>,
) -> PageResult {
    let granted = Authorized::<ProvisionResources>::grant(visitor.principal.clone())?;
    let scope = granted.principal.tenant_scope()?;
    let tenant = crate::tenancy::get(&state, scope.tenant()).await?;
    let resource_type = type_of(picked.resource_type.as_deref());
    let allowed: Vec<String> = tenant
        .policy
        .allowed_jurisdictions
        .iter()
        .map(ToString::to_string)
        .collect();
    let chosen = picked
        .country
        .as_deref()
        .filter(|c| allowed.iter().any(|a| a == c))
        .map(str::to_owned);
    let mut sizes: Vec<String> = state
        .members
        .known_sizes()
        .iter()
        .map(ToString::to_string)
        .collect();
    sizes.sort();
    let evaluation = match &chosen {
        Some(c) => {
            let request = alliance_core::PlacementRequest {
                resource_type,
                jurisdiction: alliance_core::Jurisdiction::parse(c).ok(),
                data_class: None,
                size: (resource_type == ResourceType::Instance)
                    .then(|| sizes.first().and_then(|s| SizeName::parse(s).ok()))
                    .flatten(),
                member: None,
                needs: Default::default(),
            };
            crate::provisioning::evaluate(&state, &scope, &request)
                .await
                .ok()
                .map(|d| EvaluationView::from(&d))
        }
        None => None,
    };
    let keys = state.store.ssh_keys(&scope, None, 500).await?;
    let kind = resource_type.as_str();
    let body = html! {
        form method="get" action="/console/new" class="filters" {
            label { "Type "
                select name="type" data-autosubmit {
                    @for t in ["bucket", "instance", "volume"] { option value=(t) selected[kind == t] { (t) } }
                }
            }
            label { "Country "
                select name="country" data-autosubmit {
                    option value="" { "choose" }
                    @for j in &allowed { option value=(j) selected[chosen.as_deref() == Some(j.as_str())] { (j) } }
                }
            }
            noscript { button type="submit" { "Show members" } }
        }
        @if let Some(e) = &evaluation {
            table class="candidates" {
                thead { tr { th { "Member" } th { "Eligible" } th { "Reasons" } } }
                tbody { @for c in &e.candidates { tr data-member=(c.member) data-eligible=(c.eligible) { td { (c.member) } td { @if c.eligible { "yes" } @else { "no" } } td { (c.reasons.join("; ")) } } } }
            }
            @if let Some(m) = &e.chosen { p { "It would go to " strong data-field="chosen" { (m) } "." } }
        }
        @if let Some(c) = &chosen {
            form method="post" action="/console/resources" class="stack" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                input type="hidden" name="type" value=(kind);
                input type="hidden" name="country" value=(c);
                label { "Name " input type="text" name="name" required maxlength="128"; }
                @if resource_type == ResourceType::Instance {
                    label { "Size " select name="size" { @for s in &sizes { option value=(s) { (s) } } } }
                    label { "Image " select name="image" { @for i in state.members.known_images() { option value=(i.to_string()) { (i.to_string()) } } } }
                    label { "SSH key " select name="ssh_key" { option value="" { "(none)" } @for k in &keys { option value=(k.name) { (k.name) } } } }
                }
                @if resource_type == ResourceType::Volume {
                    label { "Size (GB) " input type="number" name="size_gb" min="1" max="65536" value="10" required; }
                }
                button type="submit" { "Create " (kind) " in " (c) }
            }
        }
    };
    Ok(layout(&format!("New {kind}"), Some(&visitor), body).into_response())
}

/// The create form's fields.
#[derive(Debug, Deserialize)]
pub struct NewResource {
    csrf: String,
    #[serde(rename = "type", default)]
    resource_type: Option<String>,
    country: String,
    name: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    ssh_key: String,
    #[serde(default)]
    size_gb: String,
}

/// `POST /console/resources`: the same creation as the API's; then its operation.
pub async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<NewResource>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<ProvisionResources>::grant(visitor.principal.clone())?;
    let resource_type = type_of(form.resource_type.as_deref());
    let mut body = serde_json::json!({ "name": form.name, "jurisdiction": form.country });
    match resource_type {
        ResourceType::Instance => {
            body["size"] = serde_json::json!(form.size);
            body["image"] = serde_json::json!(form.image);
            if !form.ssh_key.is_empty() {
                body["ssh_key"] = serde_json::json!(form.ssh_key);
            }
        }
        ResourceType::Volume => {
            let gb: u32 = form.size_gb.trim().parse().map_err(|_| {
                PageError(ApiError::invalid_field("`size_gb`: a whole number of GB"))
            })?;
            body["size_gb"] = serde_json::json!(gb);
        }
        ResourceType::Bucket => {}
    }
    let request = crate::api::resources::create_request(resource_type, &body, &state)?;
    let facts = crate::idempotency::RequestFacts {
        request_id: granted.principal.request_id.clone(),
        ..Default::default()
    };
    let path = format!("/v1/{}s", resource_type.as_str());
    let stored = crate::provisioning::create(
        &state,
        &granted.principal,
        &facts,
        &path,
        &body,
        request,
        crate::api::views::accepted,
    )
    .await?;
    super::to_operation(&stored)
}
