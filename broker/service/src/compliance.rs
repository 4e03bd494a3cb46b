//! Whether a tenant's live resources still comply with its policy: its allowed
//! jurisdictions, and the data class each resource was placed for (the member's
//! certifications, the region rule). Placement checks these before placing; facts change
//! after (a member loses a certification, the config asks more of a class), so the residency
//! report and every resource view say `compliance: outside_policy` with the reasons,
//! computed from the facts as they are when read. Narrowing a tenant's jurisdictions under
//! its resources is refused instead (`tenancy`).

use std::collections::BTreeSet;

use alliance_core::policy::{member_shortfalls, outside_policy_reasons};
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
    allowed: Option<&'a BTreeSet<Jurisdiction>>,
}

impl<'a> Compliance<'a> {
    /// The rules of `policy`'s tenant.
    pub fn new(state: &'a AppState, policy: &'a TenantPolicy) -> Self {
        Self {
            state,
            allowed: Some(&policy.allowed_jurisdictions),
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
        let entry = self.state.members.entry(member);
        outside_policy_reasons(
            self.allowed,
            jurisdiction,
            self.state.config.data_classes.get(class),
            entry
                .as_ref()
                .map(|e| (&e.config.certifications, &e.config.jurisdictions)),
        )
    }
}

impl Compliance<'_> {
    /// The reasons for a resource as stored; a deleted or failed one holds no data to judge.
    pub fn of_resource(&self, r: &crate::store::ResourceRow) -> Vec<String> {
        self.of_live(r.status, &r.jurisdiction, &r.member_id, &r.data_class)
    }

    /// The reasons for a resource of the residency report.
    pub fn of_residency(&self, r: &crate::store::ResidencyRow) -> Vec<String> {
        self.of_live(r.status, &r.jurisdiction, &r.member_id, &r.data_class)
    }

    fn of_live(
        &self,
        status: alliance_core::ResourceStatus,
        jurisdiction: &Jurisdiction,
        member: &MemberId,
        class: &DataClassName,
    ) -> Vec<String> {
        use alliance_core::ResourceStatus;
        if matches!(status, ResourceStatus::Deleted | ResourceStatus::Failed) {
            Vec::new()
        } else {
            self.reasons(jurisdiction, member, class)
        }
    }
}

/// Finds the live resources whose member no longer meets their data class (the config lost
/// a certification, a class asks more), and records each change of that in the audit log
/// once: `resource.compliance` with outcome `outside_policy` and the reasons when a
/// resource is newly flagged (or for other reasons), `complies` when a flagged one is fine
/// again (or gone). Members and classes change only with the config, so this runs at start.
pub async fn record_changes(state: &AppState) -> crate::store::StoreResult<usize> {
    let mut now_flagged: std::collections::BTreeMap<
        String,
        (alliance_core::TenantId, Vec<String>),
    > = std::collections::BTreeMap::new();
    for entry in state.members.all() {
        let config = &entry.config;
        for (name, class) in &state.config.data_classes {
            let reasons =
                member_shortfalls(Some(class), &config.certifications, &config.jurisdictions);
            if reasons.is_empty() {
                continue;
            }
            for (id, tenant) in state
                .store
                .live_resources_of_class(config.id.get_ref().as_str(), name)
                .await?
            {
                now_flagged.insert(id, (tenant, reasons.clone()));
            }
        }
    }
    let recorded: std::collections::BTreeMap<String, (alliance_core::TenantId, Vec<String>)> =
        state
            .store
            .flagged_resources()
            .await?
            .into_iter()
            .map(|(id, tenant, reasons)| (id, (tenant, reasons)))
            .collect();
    let now = state.clock.now_ms();
    let mut changes = 0;
    for (id, (tenant, reasons)) in &now_flagged {
        if recorded.get(id).map(|(_, r)| r) == Some(reasons) {
            continue;
        }
        tracing::warn!(resource.id = %id, tenant.id = %tenant, "a resource is outside its tenant's policy");
        let entry = crate::store::AuditEntry::system(
            "system:compliance",
            Some(tenant.to_string()),
            "resource.compliance".to_owned(),
            Some(id.clone()),
            "outside_policy",
            serde_json::json!({ "reasons": reasons }),
        );
        state
            .store
            .set_compliance(id, tenant, reasons, &entry, now)
            .await?;
        changes += 1;
    }
    for (id, (tenant, _)) in &recorded {
        if now_flagged.contains_key(id) {
            continue;
        }
        let entry = crate::store::AuditEntry::system(
            "system:compliance",
            Some(tenant.to_string()),
            "resource.compliance".to_owned(),
            Some(id.clone()),
            "complies",
            serde_json::json!({ "reasons": [] }),
        );
        state
            .store
            .set_compliance(id, tenant, &[], &entry, now)
            .await?;
        changes += 1;
    }
    Ok(changes)
}
