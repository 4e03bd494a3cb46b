//! Whether a tenant's live resources still comply with its policy: its allowed
//! jurisdictions, and the data class each resource was placed for (the member's
//! certifications, the region rule). Placement checks these before placing; facts change
//! after (a member loses a certification, the config asks more of a class), so the residency
//! report and every resource view say `compliance: outside_policy` with the reasons,
//! computed from the facts as they are when read. Narrowing a tenant's jurisdictions under
//! its resources is refused instead (`tenancy`).

use std::collections::BTreeSet;

use alliance_core::policy::outside_policy_reasons;
use alliance_core::{DataClassName, Jurisdiction, MemberId, TenantPolicy};

use crate::state::AppState;

/// `ok` or `outside_policy`.
pub fn label(reasons: &[String]) -> &'static str {
    if reasons.is_empty() {
        "ok"
    } else {
        "outside_policy"
    }
}

/// The rules for one tenant, read once per request.
pub struct Compliance<'a> {
    state: &'a AppState,
    allowed: Option<BTreeSet<Jurisdiction>>,
}

impl<'a> Compliance<'a> {
    /// The rules of `policy`'s tenant.
    pub fn new(state: &'a AppState, policy: &TenantPolicy) -> Self {
        Self {
            state,
            allowed: Some(policy.allowed_jurisdictions.clone()),
        }
    }

    /// The member and data class rules only, from memory (a resource's view, on the read
    /// path). The tenant's jurisdictions need no check there: narrowing them under live
    /// resources is refused, so only the residency report, which reads the tenant anyway,
    /// checks them too (against a database edited by hand, say).
    pub fn members_only(state: &'a AppState) -> Self {
        Self {
            state,
            allowed: None,
        }
    }

    /// Why a resource of this tenant is outside its policy now; empty when it complies. A
    /// member that left the catalogue is not judged on certifications it no longer lists.
    pub fn reasons(
        &self,
        jurisdiction: &Jurisdiction,
        member: &MemberId,
        class: &DataClassName,
    ) -> Vec<String> {
        let entry = self.state.members.get(member.as_str());
        let any: BTreeSet<Jurisdiction> = BTreeSet::from([*jurisdiction]);
        outside_policy_reasons(
            self.allowed.as_ref().unwrap_or(&any),
            jurisdiction,
            self.state.config.data_classes.get(class),
            entry
                .as_ref()
                .map(|e| (&e.config.certifications, &e.config.jurisdictions)),
        )
    }
}
