//! SSH key routes: a tenant's OpenSSH public keys, by name (`ssh_keys` checks them).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiQuery;
use super::json::StrictJson;
use super::problem::idempotent;
use super::views::{page, Page, PageParams};
use crate::auth::permissions::{ProvisionResources, ReadResources};
use crate::auth::Authorized;
use crate::error::{ApiResult, Problem};
use crate::idempotency::{json_reply, RequestFacts};
use crate::state::AppState;
use crate::store::SshKeyRow;

/// `POST /v1/ssh-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSshKey {
    /// Your name for it: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// The OpenSSH public key line, as in a `.pub` file: Ed25519, ECDSA, or RSA ≥ 2048 bits.
    pub public_key: String,
}

/// An SSH public key of yours.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SshKeyView {
    /// Its name.
    pub name: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The public key line.
    pub public_key: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&SshKeyRow> for SshKeyView {
    fn from(row: &SshKeyRow) -> Self {
        Self {
            name: row.name.clone(),
            fingerprint: row.fingerprint.clone(),
            algorithm: row.algorithm.clone(),
            public_key: row.public_key.clone(),
            created_at: crate::time::rfc3339(row.created_at),
        }
    }
}

/// Add an SSH public key.
#[utoipa::path(post, path = "/v1/ssh-keys", tag = "ssh-keys", request_body = CreateSshKey,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first response for 24 h")),
    responses((status = 201, body = SshKeyView), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_ssh_key(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    facts: RequestFacts,
    uri: OriginalUri,
    body: StrictJson<CreateSshKey>,
) -> ApiResult<Response> {
    let action = async {
        let b = &body.value;
        let row = crate::ssh_keys::create(&state, &auth.principal, &b.name, &b.public_key).await?;
        json_reply(201, None, &SshKeyView::from(&row))
    };
    idempotent(
        &state,
        &auth.principal,
        &facts,
        &uri,
        &body.canonical,
        action,
    )
    .await
}

/// Your SSH public keys, by name.
#[utoipa::path(get, path = "/v1/ssh-keys", tag = "ssh-keys", params(PageParams), responses((status = 200, body = Page<SshKeyView>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list_ssh_keys(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<SshKeyView>>> {
    let scope = auth.principal.tenant_scope()?;
    let (limit, after) = params.resolve("ssh-keys")?;
    let rows = state
        .store
        .ssh_keys(&scope, after.as_deref(), limit + 1)
        .await?;
    Ok(Json(page(
        rows,
        limit,
        "ssh-keys",
        |k| k.name.clone(),
        |k| SshKeyView::from(k),
    )))
}

/// One of your SSH public keys.
#[utoipa::path(get, path = "/v1/ssh-keys/{name}", tag = "ssh-keys", params(("name" = String, Path)), responses((status = 200, body = SshKeyView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_ssh_key(
    State(state): State<AppState>,
    auth: Authorized<ReadResources>,
    Path(name): Path<String>,
) -> ApiResult<Json<SshKeyView>> {
    let row = crate::ssh_keys::get(&state, &auth.principal, &name).await?;
    Ok(Json(SshKeyView::from(&row)))
}

/// Delete one of your SSH public keys (instances that use it keep it).
#[utoipa::path(delete, path = "/v1/ssh-keys/{name}", tag = "ssh-keys", params(("name" = String, Path)), responses((status = 204, description = "deleted"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete_ssh_key(
    State(state): State<AppState>,
    auth: Authorized<ProvisionResources>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    crate::ssh_keys::delete(&state, &auth.principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
