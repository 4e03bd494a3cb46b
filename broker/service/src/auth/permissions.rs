//! Which roles hold which permission: the whole authorization table in one place.
//!
//! A handler names its permission in its signature (`Authorized<ProvisionResources>`);
//! the extractor refuses every other role with 403 before the handler runs.

use super::Role;

/// A permission: the roles that hold it.
pub trait Permission: Send + Sync + 'static {
    /// The roles holding it.
    fn roles() -> &'static [Role];
    /// Whether `role` holds it.
    fn allows(role: Role) -> bool {
        Self::roles().contains(&role)
    }
}

macro_rules! permission {
    ($(#[$doc:meta])* $name:ident => [$($role:ident),+]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl Permission for $name {
            fn roles() -> &'static [Role] {
                &[$(Role::$role),+]
            }
        }
    };
}

permission!(
    /// Read the tenant's resources, operations and placement dry runs.
    ReadResources => [TenantUser, TenantAdmin]
);
permission!(
    /// Create and delete the tenant's resources.
    ProvisionResources => [TenantAdmin]
);
permission!(
    /// See a tenant's residency report: that tenant, or an operator.
    ReadResidency => [TenantUser, TenantAdmin, Operator]
);
permission!(
    /// Read the member catalogue: anyone authenticated.
    ReadMembers => [TenantUser, TenantAdmin, Partner, Billing, Operator]
);
permission!(
    /// Create, read and change tenants.
    ManageTenants => [Operator]
);
permission!(
    /// Read the audit log.
    ReadAudit => [Operator]
);
permission!(
    /// Apply to join, and read one's own application: partners, and operators.
    ApplyAsPartner => [Partner, Operator]
);
permission!(
    /// Approve or reject applications; suspend, resume, drain, retire members.
    ManageMembers => [Operator]
);
permission!(
    /// Read metered usage: tenants (their own), billing, operators.
    ReadUsage => [TenantUser, TenantAdmin, Billing, Operator]
);
permission!(
    /// Read members' statements: their partner, billing, operators.
    ReadStatements => [Partner, Billing, Operator]
);
permission!(
    /// Upload a member's statement: its partner, billing.
    UploadStatements => [Partner, Billing]
);
permission!(
    /// Run and read reconciliations.
    Reconcile => [Billing, Operator]
);
permission!(
    /// Read a signed checkpoint of the audit chain: operators, and tenants for their own view.
    ReadAuditCheckpoint => [TenantUser, TenantAdmin, Operator]
);
