//! Drift and orphan detection: compare what each member says it holds with the books.
//!
//! A resource at a member that the broker does not know (or knows as deleted) is an
//! **orphan**; a resource the books hold as active that the member does not have is
//! **missing**. Resources in transition (provisioning, deleting) are left out, so a running
//! operation is never reported. The periodic job is a singleton across replicas (an
//! advisory lock on PostgreSQL); each report is stored, and a report that differs from the
//! previous one is recorded in the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alliance_adapter_api::CallContext;
use alliance_core::ResourceStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::members::MemberEntry;
use crate::state::AppState;
use crate::store::{AuditEntry, StoreResult};
use crate::time::rfc3339;

/// Advisory lock key of the drift job ("drif").
const DRIFT_LOCK: i64 = 0x6472_6966;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// `instance`, `volume` or `bucket`.
    pub resource_type: String,
    /// The broker's id, when the member reports one.
    pub resource_id: Option<String>,
    /// The member's own id, when known.
    pub member_resource_id: Option<String>,
    /// Why it is reported.
    pub reason: String,
}

/// A member's drift report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriftReport {
    /// The member.
    pub member: String,
    /// When the check ran (RFC 3339).
    pub checked_at: String,
    /// Whether every service could be listed.
    pub complete: bool,
    /// Resources at the member that the books do not hold.
    pub orphans: Vec<Finding>,
    /// Resources the books hold as active that the member does not have.
    pub missing: Vec<Finding>,
    /// Services that could not be listed, and why.
    pub errors: Vec<String>,
}

/// Checks one member now, stores the report, audits a change.
pub async fn check_member(state: &AppState, entry: &MemberEntry) -> StoreResult<DriftReport> {
    let member = entry.id().to_string();
    let holdings = state.store.member_holdings(&member, true).await?;
    let by_id: BTreeMap<&str, &crate::store::MemberHolding> =
        holdings.iter().map(|h| (h.id.as_str(), h)).collect();
    let mut orphans = Vec::new();
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for service in entry.config.services.iter().copied() {
        let ctx = CallContext::new(None, "drift", Duration::from_secs(30));
        let listed = match entry.adapter.list(&ctx, service, None).await {
            Ok(listed) => listed,
            Err(e) => {
                errors.push(format!("{service}: {e}"));
                continue;
            }
        };
        for resource in listed {
            let known = resource.broker_id.as_deref().and_then(|id| by_id.get(id));
            if let Some(id) = &resource.broker_id {
                seen.insert(id.clone());
            }
            let reason = match known {
                None => Some("the broker has no record of this resource"),
                Some(h) if h.status == ResourceStatus::Deleted => {
                    Some("the broker deleted this resource; the member still holds it")
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                orphans.push(Finding {
                    resource_type: service.as_str().to_owned(),
                    resource_id: resource.broker_id.clone(),
                    member_resource_id: Some(resource.member_resource_id.clone()),
                    reason: reason.to_owned(),
                });
            }
        }
        for holding in holdings.iter().filter(|h| {
            h.resource_type == service
                && matches!(h.status, ResourceStatus::Active | ResourceStatus::Updating)
        }) {
            if !seen.contains(&holding.id) {
                missing.push(Finding {
                    resource_type: service.as_str().to_owned(),
                    resource_id: Some(holding.id.clone()),
                    member_resource_id: holding.member_resource_id.clone(),
                    reason: "active in the books, absent at the member".to_owned(),
                });
            }
        }
    }
    orphans.sort();
    missing.sort();
    let now = state.clock.now_ms();
    let report = DriftReport {
        member: member.clone(),
        checked_at: rfc3339(now),
        complete: errors.is_empty(),
        orphans,
        missing,
        errors,
    };
    let value = serde_json::to_value(&report).unwrap_or_default();
    let findings = |v: &serde_json::Value| (v["orphans"].clone(), v["missing"].clone());
    let drifted = !report.orphans.is_empty() || !report.missing.is_empty();
    // The audit event (when the findings changed) commits with the report itself.
    let changed = std::sync::atomic::AtomicBool::new(false);
    let details = serde_json::json!({ "orphans": report.orphans, "missing": report.missing });
    let audit = |previous: Option<&serde_json::Value>| {
        let differs = previous.map(findings) != Some(findings(&value));
        changed.store(differs, std::sync::atomic::Ordering::Relaxed);
        (differs && (drifted || previous.is_some())).then(|| {
            AuditEntry::system(
                "system:drift",
                None,
                "member.drift".into(),
                Some(member.clone()),
                if drifted { "drift" } else { "clean" },
                details.clone(),
            )
        })
    };
    state
        .store
        .put_drift_report(&member, &value, now, audit)
        .await?;
    if drifted && changed.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(member.id = %member, orphans = report.orphans.len(), missing = report.missing.len(), "member drift detected");
    }
    metrics::gauge!("alliance_member_drift_resources", "member" => member.clone(), "kind" => "orphan").set(report.orphans.len() as f64);
    metrics::gauge!("alliance_member_drift_resources", "member" => member, "kind" => "missing")
        .set(report.missing.len() as f64);
    Ok(report)
}

/// One round over every member that is not retired, if no other replica is running one.
pub async fn run_once(state: &AppState) -> StoreResult<()> {
    let job = async {
        for entry in state.members.all() {
            let (status, _) = state.members.state_of(entry.id());
            if status == alliance_core::MemberStatus::Retired {
                continue;
            }
            if let Err(e) = check_member(state, &entry).await {
                tracing::warn!(member.id = %entry.id(), error = %e, "drift check failed");
            }
        }
    };
    state.store.singleton(DRIFT_LOCK, job).await?;
    Ok(())
}
