//! The conformance run of an application: the suite against the partner's endpoint, in the
//! background, with a sandbox tenant and a deliberately wrong token; the report moves the
//! application to `awaiting_approval` or `conformance_failed`. A run a crash interrupted is
//! started again at boot.

use std::collections::BTreeMap;
use std::time::Duration;

use alliance_adapter_api::{CallContext, MemberAdapter};
use alliance_adapter_federation::FederationAdapter;
use alliance_conformance::Options as ConformanceOptions;
use alliance_core::{ApplicationStatus, ImageName, Jurisdiction, ResourceType, SizeName, TenantId};

use super::application_event;
use crate::state::AppState;
use crate::store::ApplicationRow;

/// Runs the conformance suite for an application in the background.
pub fn spawn_conformance(state: AppState, row: ApplicationRow, token: Option<String>) {
    tokio::spawn(async move {
        let allowed = state.members.allowed_destinations().clone();
        let (status, report) = conformance(&row, token, allowed).await;
        let entry = application_event(
            None,
            "partner_application.conformance",
            &row.member_id,
            &row.id,
            status.as_str(),
            serde_json::json!({}),
        );
        match state
            .store
            .set_conformance(&row.id, status, &report, &entry, state.clock.now_ms())
            .await
        {
            Ok(_) => {
                tracing::info!(application = %row.id, member.id = %row.member_id, status = status.as_str(), "conformance finished")
            }
            Err(e) => {
                tracing::error!(application = %row.id, error = %e, "cannot record the conformance report")
            }
        }
    });
}

async fn conformance(
    row: &ApplicationRow,
    token: Option<String>,
    allowed: alliance_adapter_http::AllowedDestinations,
) -> (ApplicationStatus, serde_json::Value) {
    let failed = |why: String| {
        (
            ApplicationStatus::ConformanceFailed,
            serde_json::json!({ "ok": false, "error": why }),
        )
    };
    let d = &row.description;
    let endpoint = d["adapter"]["endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let adapter = match FederationAdapter::restricted(
        &row.member_id,
        &endpoint,
        token.clone(),
        allowed.clone(),
    ) {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let bad = match &token {
        Some(_) => FederationAdapter::restricted(
            &row.member_id,
            &endpoint,
            Some("alliance-conformance-wrong-token".into()),
            allowed,
        )
        .ok(),
        None => None,
    };
    let ctx = CallContext::new(
        None,
        format!("conformance-{}", row.id),
        Duration::from_secs(10),
    );
    let capabilities = match adapter.capabilities(&ctx).await {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot read the member's capabilities: {e}")),
    };
    let declared: Vec<Jurisdiction> = d["jurisdictions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j.as_str().and_then(|j| Jurisdiction::parse(j).ok()))
        .collect();
    let Some(jurisdiction) = declared
        .iter()
        .copied()
        .find(|j| capabilities.jurisdictions.iter().any(|c| c == j.as_str()))
    else {
        return failed(
            "the member's capabilities declare none of the application's jurisdictions".into(),
        );
    };
    let services: Vec<ResourceType> = d["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().and_then(|s| ResourceType::parse(s).ok()))
        .collect();
    let sizes: BTreeMap<String, String> = if d["sizes"].as_object().is_some_and(|m| !m.is_empty()) {
        serde_json::from_value(d["sizes"].clone()).unwrap_or_default()
    } else {
        capabilities.sizes.clone()
    };
    let images: BTreeMap<String, String> = if d["images"].as_object().is_some_and(|m| !m.is_empty())
    {
        serde_json::from_value(d["images"].clone()).unwrap_or_default()
    } else {
        capabilities.images.clone()
    };
    let options = ConformanceOptions {
        tenant: TenantId::parse("conformance-sandbox").unwrap_or_else(|_| unreachable_tenant()),
        jurisdiction,
        services,
        not_offered: BTreeMap::new(),
        size: sizes.keys().find_map(|s| SizeName::parse(s).ok()),
        resize_to: sizes.keys().filter_map(|s| SizeName::parse(s).ok()).nth(1),
        image: images.keys().find_map(|i| ImageName::parse(i).ok()),
        settle_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(10),
    };
    let report = alliance_conformance::run(
        &adapter,
        bad.as_ref().map(|b| b as &dyn MemberAdapter),
        &options,
        &mut |_| {},
    )
    .await;
    let status = if report.ok() {
        ApplicationStatus::AwaitingApproval
    } else {
        ApplicationStatus::ConformanceFailed
    };
    (
        status,
        serde_json::json!({ "ok": report.ok(), "report": report, "sizes": sizes, "images": images }),
    )
}

#[expect(clippy::panic, reason = "the literal is a valid tenant id")]
fn unreachable_tenant() -> TenantId {
    panic!("`conformance-sandbox` is a valid tenant id")
}

/// Re-runs conformance for applications a crash left running.
pub async fn resume_conformance(state: &AppState) -> anyhow::Result<()> {
    for row in state
        .store
        .applications_in(ApplicationStatus::ConformanceRunning)
        .await?
    {
        let token = match &row.credentials {
            Some(sealed) => state
                .sealer
                .open_token(sealed, &row.member_id)
                .map_err(anyhow::Error::msg)?,
            None => None,
        };
        spawn_conformance(state.clone(), row, token);
    }
    Ok(())
}
