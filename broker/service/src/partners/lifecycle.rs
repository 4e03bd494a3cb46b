//! Approval, rejection and the lifecycle of members (suspend, resume, drain, retire).
//!
//! Approval creates the member row in the same transaction as the application's change and
//! adds it to this replica's routing table at once; the other replicas load it on their
//! next refresh. Every change commits its audit event with it.

use std::collections::BTreeMap;
use std::time::Duration;

use alliance_core::{
    ApplicationStatus, Certification, ImageName, Jurisdiction, MemberId, MemberStatus,
    ResourceType, SizeName,
};

use super::application_event;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::members::MemberDefinition;
use crate::partners::AdapterDescription;
use crate::state::AppState;
use crate::store::{ApplicationRow, Transition};

/// One application; 404 when unknown.
pub async fn application(state: &AppState, id: &str) -> ApiResult<ApplicationRow> {
    state
        .store
        .application(id)
        .await?
        .ok_or_else(|| ApiError::not_found("partner application", id))
}

/// Approves an application: the member becomes active at once.
pub async fn approve(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<ApplicationRow> {
    let row = application(state, id).await?;
    if row.status != ApplicationStatus::AwaitingApproval {
        return Err(ApiError::new(
            ErrorCode::ApplicationNotApprovable,
            format!(
                "the application is {}; only one awaiting approval can be approved",
                row.status
            ),
        ));
    }
    let d = &row.description;
    let list = |key: &str| -> Vec<String> {
        d[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let discovered = |key: &str| -> BTreeMap<String, String> {
        row.conformance
            .as_ref()
            .and_then(|c| serde_json::from_value(c[key].clone()).ok())
            .unwrap_or_default()
    };
    let adapter: AdapterDescription =
        serde_json::from_value(d["adapter"].clone()).map_err(ApiError::internal)?;
    let definition = MemberDefinition {
        id: MemberId::parse(&row.member_id).map_err(ApiError::internal)?,
        name: d["name"].as_str().unwrap_or_default().to_owned(),
        jurisdictions: list("jurisdictions")
            .iter()
            .filter_map(|j| Jurisdiction::parse(j).ok())
            .collect(),
        certifications: list("certifications")
            .iter()
            .filter_map(|c| Certification::parse(c).ok())
            .collect(),
        services: list("services")
            .iter()
            .filter_map(|s| ResourceType::parse(s).ok())
            .collect(),
        sizes: discovered("sizes")
            .into_iter()
            .filter_map(|(k, v)| SizeName::parse(&k).ok().map(|k| (k, v)))
            .collect(),
        images: discovered("images")
            .into_iter()
            .filter_map(|(k, v)| ImageName::parse(&k).ok().map(|k| (k, v)))
            .collect(),
        endpoint: adapter.main_url().to_owned(),
        prices: serde_json::from_value(d["prices"].clone()).unwrap_or_default(),
        adapter: Some(adapter),
    };
    let credentials = match &row.credentials {
        Some(sealed) => Some(
            state
                .sealer
                .open_credentials(sealed, &row.member_id)
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let entry = definition
        .to_entry(
            credentials.as_ref(),
            Duration::from_millis(state.config.operations.call_timeout_ms),
            state.members.allowed_destinations(),
        )
        .map_err(ApiError::internal)?;
    let audit_entry = application_event(
        Some(principal),
        "partner_application.approve",
        &row.member_id,
        id,
        "succeeded",
        serde_json::json!({}),
    );
    let decided_by = format!("{}|{}", principal.issuer, principal.subject);
    if !state
        .store
        .approve_application(
            id,
            &decided_by,
            &definition,
            row.credentials.as_deref(),
            &audit_entry,
            state.clock.now_ms(),
        )
        .await?
    {
        return Err(ApiError::conflict(
            "the application changed meanwhile, or a member of that id exists; read it again",
        ));
    }
    entry.prime().await;
    state.members.insert(entry, MemberStatus::Active);
    tracing::info!(member.id = %definition.id, "member joined the alliance");
    application(state, id).await
}

/// Rejects an application.
pub async fn reject(
    state: &AppState,
    principal: &Principal,
    id: &str,
    reason: Option<&str>,
) -> ApiResult<ApplicationRow> {
    let row = application(state, id).await?;
    let entry = application_event(
        Some(principal),
        "partner_application.reject",
        &row.member_id,
        id,
        "succeeded",
        serde_json::json!({ "reason": reason }),
    );
    let decided_by = format!("{}|{}", principal.issuer, principal.subject);
    if !state
        .store
        .reject_application(id, &decided_by, reason, &entry, state.clock.now_ms())
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::ApplicationNotRejectable,
            format!("the application is {}", row.status),
        ));
    }
    application(state, id).await
}

/// A lifecycle action on a member.
#[derive(Debug, Clone, Copy)]
pub enum Lifecycle {
    /// No new placements for now.
    Suspend,
    /// Back to active.
    Resume,
    /// No new placements; being emptied.
    Drain,
    /// Gone (requires no live resources).
    Retire,
}

/// Applies a lifecycle action; the routing table of this replica changes at once.
pub async fn transition(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: Lifecycle,
) -> ApiResult<()> {
    use MemberStatus::*;
    let member = MemberId::parse(id).map_err(|_| ApiError::not_found("member", id))?;
    let (from, to, name): (&[MemberStatus], MemberStatus, &str) = match action {
        Lifecycle::Suspend => (&[Active, Draining], Suspended, "suspend"),
        Lifecycle::Resume => (&[Suspended, Draining], Active, "resume"),
        Lifecycle::Drain => (&[Active, Suspended], Draining, "drain"),
        Lifecycle::Retire => (&[Active, Suspended, Draining], Retired, "retire"),
    };
    let entry = principal.audit(
        &format!("member.{name}"),
        None,
        Some(id.to_owned()),
        "succeeded",
        serde_json::json!({ "to": to.as_str() }),
    );
    match state
        .store
        .transition_member(&member, from, to, &entry, state.clock.now_ms())
        .await?
    {
        Transition::NotFound => Err(ApiError::not_found("member", id)),
        Transition::Refused(current) => Err(ApiError::new(
            ErrorCode::MemberInvalidTransition,
            format!("cannot {name} a member that is {current}"),
        )),
        Transition::HasResources(n) => Err(ApiError::new(
            ErrorCode::MemberHasResources,
            format!("the member still holds {n} resources; drain it first"),
        )),
        Transition::Done => {
            state.members.set_status(&member, to);
            tracing::info!(member.id = %member, status = to.as_str(), "member lifecycle changed");
            Ok(())
        }
    }
}
