//! Authentication and authorization.
//!
//! Authentication is an extractor: [`Authorized<P>`] verifies the bearer JWT and builds a
//! [`Principal`]. Authorization is declared once per route by the permission type `P` in
//! the handler's signature (see [`permissions`]); this module is the one place that decides
//! which roles hold which permission. Tenant data is reached only through the
//! [`TenantScope`](crate::store::TenantScope) that a principal with a tenant role yields.

pub mod dev_issuer;
pub mod keyfile;
pub mod permissions;
pub mod verify;

use std::collections::BTreeSet;
use std::marker::PhantomData;

use alliance_core::{MemberId, TenantId};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TenantScope;

pub use dev_issuer::DevIssuer;
pub use permissions::Permission;
pub use verify::TokenVerifier;

/// The roles of the SPEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads the tenant's resources.
    TenantUser,
    /// Reads and changes the tenant's resources.
    TenantAdmin,
    /// A partner cloud: its own member, application and statements.
    Partner,
    /// Finance: usage, statements, reconciliations.
    Billing,
    /// Runs the broker: tenants, members, audit.
    Operator,
}

impl Role {
    /// Parses the SPEC name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "tenant-user" => Some(Self::TenantUser),
            "tenant-admin" => Some(Self::TenantAdmin),
            "partner" => Some(Self::Partner),
            "billing" => Some(Self::Billing),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }

    /// The SPEC name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TenantUser => "tenant-user",
            Self::TenantAdmin => "tenant-admin",
            Self::Partner => "partner",
            Self::Billing => "billing",
            Self::Operator => "operator",
        }
    }

    /// Whether the role acts for one tenant.
    pub fn is_tenant_role(&self) -> bool {
        matches!(self, Self::TenantUser | Self::TenantAdmin)
    }
}

/// Who is calling, as proven by a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// Recognised roles (unknown role names are ignored).
    pub roles: BTreeSet<Role>,
    /// The tenant, for tenant roles.
    pub tenant: Option<TenantId>,
    /// The member, for the partner role.
    pub member: Option<MemberId>,
    /// The `x-request-id` of the request it came with, for the audit log.
    pub request_id: Option<String>,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The tenant scope of a tenant-role principal; 403 otherwise.
    pub fn tenant_scope(&self) -> Result<TenantScope, ApiError> {
        match &self.tenant {
            Some(tenant) if self.roles.iter().any(Role::is_tenant_role) => {
                Ok(TenantScope::new(tenant.clone()))
            }
            _ => Err(ApiError::forbidden(
                "this route acts for a tenant: use a tenant-user or tenant-admin token",
            )),
        }
    }

    /// The scope for reading `tenant`'s data: its own tenant roles, or an operator. Another
    /// tenant's id is answered 404, never 403, so that its existence is not revealed.
    pub fn scope_for(&self, tenant: &TenantId) -> Result<TenantScope, ApiError> {
        if self.has(Role::Operator) {
            return Ok(TenantScope::new(tenant.clone()));
        }
        match &self.tenant {
            Some(own) if own == tenant && self.roles.iter().any(Role::is_tenant_role) => {
                Ok(TenantScope::new(tenant.clone()))
            }
            _ => Err(ApiError::not_found("tenant", tenant.as_str())),
        }
    }

    /// For a principal whose only role is `partner`: its member. Such a principal sees its
    /// own member and nothing else of the catalogue.
    pub fn partner_only(&self) -> Option<&MemberId> {
        if self.roles.len() == 1 && self.has(Role::Partner) {
            self.member.as_ref()
        } else {
            None
        }
    }

    /// Whether the principal may see member `member`'s own data (statements, placed
    /// resources, applications): operators and billing for every member, a partner for the
    /// member of its token only, whatever other roles it holds.
    pub fn may_act_for_member(&self, member: &str) -> bool {
        self.has(Role::Operator)
            || self.has(Role::Billing)
            || (self.has(Role::Partner)
                && self.member.as_ref().is_some_and(|m| m.as_str() == member))
    }

    /// Role names, for the audit log.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// An audit event of an action this principal took, tied to its request.
    pub fn audit(
        &self,
        action: &str,
        tenant: Option<String>,
        resource_id: Option<String>,
        outcome: &str,
        details: serde_json::Value,
    ) -> crate::store::AuditEntry {
        crate::store::AuditEntry {
            actor: self.subject.clone(),
            roles: self.role_names(),
            tenant,
            action: action.to_owned(),
            resource_id,
            outcome: outcome.to_owned(),
            request_id: self.request_id.clone(),
            details,
        }
    }
}

/// An authenticated principal holding permission `P`; the one authorization point.
#[derive(Debug, Clone)]
pub struct Authorized<P: Permission> {
    /// The caller.
    pub principal: Principal,
    _permission: PhantomData<P>,
}

impl<P: Permission> Authorized<P> {
    /// The one permission check, for a principal however it was authenticated (a bearer
    /// token here, the console's session cookie there): 403 unless it holds a role of `P`.
    pub fn grant(principal: Principal) -> Result<Self, ApiError> {
        if !principal.roles.iter().any(|r| P::allows(*r)) {
            return Err(ApiError::forbidden(format!(
                "this route needs one of the roles {}",
                P::roles()
                    .iter()
                    .map(Role::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Self {
            principal,
            _permission: PhantomData,
        })
    }
}

impl<P: Permission> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::invalid_token("missing bearer token: send `Authorization: Bearer <jwt>`")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_token("the Authorization header is not `Bearer <jwt>`")
            })?;
        let mut principal = state.verifier.verify(token).await?;
        principal.request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let granted = Self::grant(principal)?;
        let principal = granted.principal;
        tracing::Span::current().record(
            "tenant.id",
            principal
                .tenant
                .as_ref()
                .map(TenantId::as_str)
                .unwrap_or(""),
        );
        state.rate_limiter.check(&principal)?;
        Ok(Self {
            principal,
            _permission: PhantomData,
        })
    }
}
