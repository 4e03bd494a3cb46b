//! The conformance run of an application: the suite against the partner's endpoint, in the
//! background, with a sandbox tenant and a deliberately wrong token; the report moves the
//! application to `awaiting_approval` or `conformance_failed`. A run a crash interrupted is
//! started again at boot.

use std::collections::BTreeMap;
use std::time::Duration;

use alliance_adapter_api::{CallContext, Mapping};
use alliance_conformance::Options as ConformanceOptions;
use alliance_core::{ApplicationStatus, ImageName, Jurisdiction, ResourceType, SizeName, TenantId};

use super::application_event;
use super::kinds::{AdapterDescription, Credentials, PartnerAdapter};
use crate::state::AppState;
use crate::store::ApplicationRow;

/// The member name of an applicant's adapter during conformance.
const APPLICANT: &str = "applicant";

/// Runs the conformance suite for an application in the background.
pub fn spawn_conformance(state: AppState, row: ApplicationRow, credentials: Option<Credentials>) {
    tokio::spawn(async move {
        let allowed = state.members.allowed_destinations().clone();
        let (status, report) = conformance(&row, credentials.as_ref(), &allowed).await;
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

/// A string-to-string map of the application (`sizes`, `images`).
fn mapping_of(d: &serde_json::Value, key: &str) -> BTreeMap<String, String> {
    serde_json::from_value(d[key].clone()).unwrap_or_default()
}

async fn conformance(
    row: &ApplicationRow,
    credentials: Option<&Credentials>,
    allowed: &alliance_adapter_http::AllowedDestinations,
) -> (ApplicationStatus, serde_json::Value) {
    let failed = |why: String| {
        (
            ApplicationStatus::ConformanceFailed,
            serde_json::json!({ "ok": false, "error": why }),
        )
    };
    let d = &row.description;
    let description: AdapterDescription = match serde_json::from_value(d["adapter"].clone()) {
        Ok(a) => a,
        Err(e) => return failed(format!("the stored adapter description: {e}")),
    };
    let declared: Vec<Jurisdiction> = d["jurisdictions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j.as_str().and_then(|j| Jurisdiction::parse(j).ok()))
        .collect();
    let services: Vec<ResourceType> = d["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().and_then(|s| ResourceType::parse(s).ok()))
        .collect();
    let given_sizes = mapping_of(d, "sizes");
    let given_images = mapping_of(d, "images");
    let mapping = Mapping {
        sizes: given_sizes.clone(),
        images: given_images.clone(),
        services: services.iter().copied().collect(),
    };
    // The adapter is named `applicant`, not by the id applied for: its connection metrics
    // (`/metrics` is anonymous) then label only members an operator approved, a bounded set.
    let build = |wrong| description.build(APPLICANT, credentials, mapping.clone(), allowed, wrong);
    let adapter = match build(false) {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let bad = credentials
        .and_then(|_| build(true).ok())
        .map(PartnerAdapter::into_dyn);
    let ctx = CallContext::new(
        None,
        format!("conformance-{}", row.id),
        Duration::from_secs(10),
    );
    // What the member declares: a federation member its capabilities document, the others
    // what the application says (Keystone's catalogue checked against the allowed networks
    // first, before any call to a service it names).
    let (jurisdiction, sizes, images) = match &adapter {
        PartnerAdapter::Federation(federation) => {
            let capabilities = match federation.capabilities(&ctx).await {
                Ok(c) => c,
                Err(e) => return failed(format!("cannot read the member's capabilities: {e}")),
            };
            let Some(jurisdiction) = declared
                .iter()
                .copied()
                .find(|j| capabilities.jurisdictions.iter().any(|c| c == j.as_str()))
            else {
                return failed(
                    "the member's capabilities declare none of the application's jurisdictions"
                        .into(),
                );
            };
            let or_offered = |given: BTreeMap<String, String>,
                              offered: &BTreeMap<String, String>| {
                if given.is_empty() {
                    offered.clone()
                } else {
                    given
                }
            };
            (
                jurisdiction,
                or_offered(given_sizes, &capabilities.sizes),
                or_offered(given_images, &capabilities.images),
            )
        }
        other => {
            if let PartnerAdapter::OpenStack(openstack) = other {
                if let Err(e) = openstack.check_catalogue(&ctx).await {
                    return failed(e.to_string());
                }
            }
            let Some(jurisdiction) = declared.first().copied() else {
                return failed("the application declares no jurisdiction".into());
            };
            (jurisdiction, given_sizes, given_images)
        }
    };
    let adapter = adapter.into_dyn();
    let options = ConformanceOptions {
        tenant: TenantId::parse("conformance-sandbox").unwrap_or_else(|_| unreachable_tenant()),
        jurisdiction,
        services,
        not_offered: BTreeMap::new(),
        size: by_size(&sizes).first().cloned(),
        resize_to: by_size(&sizes).get(1).cloned(),
        image: images.keys().find_map(|i| ImageName::parse(i).ok()),
        settle_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(20),
    };
    let report =
        alliance_conformance::run(adapter.as_ref(), bad.as_deref(), &options, &mut |_| {}).await;
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

/// The sizes of a mapping, smallest first by the usual names (`small`, `medium`, `large`),
/// the others after them by name: the suite creates at the first and resizes up to the
/// second (an image may not fit a smaller flavour).
fn by_size(sizes: &BTreeMap<String, String>) -> Vec<SizeName> {
    const USUAL: [&str; 3] = ["small", "medium", "large"];
    let rank = |name: &str| USUAL.iter().position(|u| *u == name).unwrap_or(USUAL.len());
    let mut names: Vec<&String> = sizes.keys().collect();
    names.sort_by_key(|name| (rank(name), name.as_str()));
    names
        .into_iter()
        .filter_map(|name| SizeName::parse(name).ok())
        .collect()
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
        let credentials = match &row.credentials {
            Some(sealed) => Some(
                state
                    .sealer
                    .open_credentials(sealed, &row.member_id)
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        spawn_conformance(state.clone(), row, credentials);
    }
    Ok(())
}
