//! A project per tenant (`tenant_project_domain`): on a tenant's first call, the project
//! named after the tenant in that domain is found or created (tagged `alliance`, so a
//! project the broker did not create is never adopted), the broker's user is granted
//! `member` on it when its role on the domain allows, and every call for the tenant is made
//! with a token scoped to that project (cached per project by [`crate::Keystone`]).
//!
//! The grants a member gives the broker's user on the domain: `manager` (to create
//! projects) and `member` inherited to the domain's projects; or `admin` on the domain, and
//! the broker grants itself `member` on each project it creates.

use alliance_adapter_api::{AdapterError, CallContext, ErrorKind, ErrorSource, Retry};
use alliance_adapter_http::{bad_response, MAX_BODY};
use alliance_core::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::keystone::Scope;
use crate::transport::service_error;
use crate::OpenStackAdapter;

/// The tag on every project the broker creates.
pub const PROJECT_TAG: &str = "alliance";

impl OpenStackAdapter {
    /// The Keystone scope of a call: the tenant's project when tenant projects are on and
    /// the call is a tenant's, else the credentials' own project.
    pub(crate) async fn scope(&self, ctx: &CallContext) -> Result<Scope, AdapterError> {
        let (Some(domain), Some(tenant)) = (&self.config.tenant_project_domain, &ctx.tenant) else {
            return Ok(Scope::Home);
        };
        let id = self
            .projects
            .try_get_with(
                tenant.as_str().to_owned(),
                self.ensure_project(ctx, domain, tenant),
            )
            .await
            .map_err(|e| (*e).clone())?;
        Ok(Scope::Project(id))
    }

    /// The contexts a listing is made in: `ctx` itself without tenant projects; with them,
    /// the tenant's project for one tenant, and for all, the credentials' own project and
    /// every tenant project of the domain.
    pub(crate) async fn listing_contexts(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<CallContext>, AdapterError> {
        if self.config.tenant_project_domain.is_none() {
            return Ok(vec![ctx.clone()]);
        }
        let of = |tenant: Option<TenantId>| CallContext {
            tenant,
            ..ctx.clone()
        };
        Ok(match tenant {
            Some(t) => vec![of(Some(t.clone()))],
            None => std::iter::once(of(None))
                .chain(
                    self.tenants_with_projects(ctx)
                        .await?
                        .into_iter()
                        .map(|t| of(Some(t))),
                )
                .collect(),
        })
    }

    /// The tenants that have a project in the domain (for listings of every tenant).
    pub(crate) async fn tenants_with_projects(
        &self,
        ctx: &CallContext,
    ) -> Result<Vec<TenantId>, AdapterError> {
        let Some(domain) = &self.config.tenant_project_domain else {
            return Ok(Vec::new());
        };
        let (token, domain_id) = self.domain_token(ctx, domain).await?;
        let found = self
            .keystone_get(
                ctx,
                &token,
                &format!("/projects?domain_id={domain_id}&tags={PROJECT_TAG}"),
            )
            .await?;
        Ok(found["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().and_then(|n| TenantId::parse(n).ok()))
            .collect())
    }

    async fn domain_token(
        &self,
        ctx: &CallContext,
        domain: &str,
    ) -> Result<(String, String), AdapterError> {
        let session = self
            .keystone
            .session_in(&self.http, ctx, &Scope::Domain(domain.to_owned()))
            .await?;
        let domain_id = session.domain_id.clone().ok_or_else(|| {
            bad_response(
                Retry::Safe,
                "Keystone's domain-scoped token names no domain",
            )
        })?;
        Ok((session.token.clone(), domain_id))
    }

    /// Finds or creates the tenant's project and grants the broker's user `member` on it.
    async fn ensure_project(
        &self,
        ctx: &CallContext,
        domain: &str,
        tenant: &TenantId,
    ) -> Result<String, AdapterError> {
        let (token, domain_id) = self.domain_token(ctx, domain).await?;
        let find = format!("/projects?domain_id={domain_id}&name={}", tenant.as_str());
        let mut project = self.first_project(ctx, &token, &find).await?;
        if project.is_none() {
            let body = json!({ "project": {
                "name": tenant.as_str(), "domain_id": domain_id,
                "description": format!("alliance tenant {}", tenant.as_str()),
                "tags": [PROJECT_TAG] } });
            let answer = self
                .keystone_call(ctx, &token, Method::POST, "/projects", Some(&body))
                .await?;
            project = match answer.status {
                // Created by a concurrent call (or an earlier attempt): read it.
                StatusCode::CONFLICT => self.first_project(ctx, &token, &find).await?,
                s if s.is_success() => serde_json::from_slice::<Value>(&answer.body)
                    .ok()
                    .map(|v| v["project"].clone()),
                _ => return Err(self.keystone_refused(&answer, "create the tenant's project")),
            };
        }
        let project = project.ok_or_else(|| {
            bad_response(Retry::Safe, "Keystone shows no project after creating it")
        })?;
        let tagged = project["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == PROJECT_TAG));
        if !tagged {
            return Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Member,
                Retry::Never,
                format!(
                    "a project `{}` exists in domain {domain} without the `{PROJECT_TAG}` tag: the broker adopts only projects it created",
                    tenant.as_str()
                ),
            ));
        }
        let id = project["id"]
            .as_str()
            .ok_or_else(|| bad_response(Retry::Safe, "Keystone's project has no id"))?
            .to_owned();
        self.grant_member(ctx, &token, &id).await?;
        Ok(id)
    }

    /// Grants the broker's user `member` on the project when the domain role allows it; a
    /// refusal is left for the project-scoped token to judge (an inherited role suffices).
    async fn grant_member(
        &self,
        ctx: &CallContext,
        token: &str,
        project: &str,
    ) -> Result<(), AdapterError> {
        let session = self
            .keystone
            .session_in(&self.http, ctx, &Scope::Home)
            .await?;
        let Some(user) = session.user_id.clone() else {
            return Ok(());
        };
        let roles = self.keystone_get(ctx, token, "/roles?name=member").await;
        let Some(role) = roles
            .ok()
            .and_then(|r| r["roles"][0]["id"].as_str().map(str::to_owned))
        else {
            return Ok(());
        };
        let path = format!("/projects/{project}/users/{user}/roles/{role}");
        let answer = self
            .keystone_call(ctx, token, Method::PUT, &path, None)
            .await?;
        match answer.status {
            s if s.is_success() => Ok(()),
            StatusCode::FORBIDDEN => Ok(()),
            _ => Err(self.keystone_refused(&answer, "grant the broker `member` on the project")),
        }
    }

    async fn first_project(
        &self,
        ctx: &CallContext,
        token: &str,
        path: &str,
    ) -> Result<Option<Value>, AdapterError> {
        let found = self.keystone_get(ctx, token, path).await?;
        Ok(found["projects"]
            .as_array()
            .and_then(|p| p.first())
            .cloned())
    }

    async fn keystone_call(
        &self,
        ctx: &CallContext,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<alliance_adapter_http::Answer, AdapterError> {
        let retry = if method == Method::GET || method == Method::PUT {
            Retry::Safe
        } else {
            // A repeated create finds the first one (409, then read).
            Retry::WithIdempotencyKey
        };
        let mut request = self
            .http
            .request(method, &format!("{}{path}", self.keystone.auth_url()))
            .header("x-auth-token", token)
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        self.http.send(ctx, request, retry, MAX_BODY).await
    }

    async fn keystone_get(
        &self,
        ctx: &CallContext,
        token: &str,
        path: &str,
    ) -> Result<Value, AdapterError> {
        let answer = self
            .keystone_call(ctx, token, Method::GET, path, None)
            .await?;
        if !answer.status.is_success() {
            return Err(self.keystone_refused(&answer, "read the tenants' projects"));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| bad_response(Retry::Safe, format!("Keystone's answer is not JSON: {e}")))
    }

    fn keystone_refused(&self, answer: &alliance_adapter_http::Answer, what: &str) -> AdapterError {
        if answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::UNAUTHORIZED {
            let domain = self.config.tenant_project_domain.as_deref().unwrap_or("?");
            return AdapterError::new(
                ErrorKind::AuthFailed,
                ErrorSource::Member,
                Retry::Never,
                format!(
                    "Keystone refused to {what} ({}): the broker's user needs the `manager` (or `admin`) role on the domain {domain}",
                    answer.status
                ),
            );
        }
        service_error(&self.member, answer, Retry::Safe)
    }
}
