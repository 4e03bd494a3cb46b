//! Partner clouds joining the alliance: applications with an automatic conformance run,
//! operator approval, and member lifecycle (suspend, resume, drain, retire), all without a
//! restart.
//!
//! A submitted application is stored with its credentials sealed (`secrets.rs`) and its
//! endpoint checked against `[security] allowed_member_networks` before any connection;
//! the conformance suite then runs in the background against the endpoint with a sandbox
//! tenant, and the report decides between `awaiting_approval` and `conformance_failed`.
//! Approval creates the member in the same transaction and adds it to this replica's
//! routing table at once; the other replicas load it on their next refresh.

use std::collections::BTreeMap;
use std::time::Duration;

use alliance_adapter_api::{CallContext, MemberAdapter};
use alliance_adapter_federation::FederationAdapter;
use alliance_conformance::Options as ConformanceOptions;
use alliance_core::{
    Certification, ImageName, Jurisdiction, MemberId, MemberStatus, ResourceType, SizeName,
    TenantId,
};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::members::MemberDefinition;
use crate::state::AppState;
use crate::store::{ApplicationRow, AuditEntry, Transition};
use crate::time::{now_ms, rfc3339};

/// A certification with the reference of its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The certification.
    pub certification: String,
    /// Where the evidence is (certificate number, URL, document id).
    pub reference: String,
}

/// How the broker reaches the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterDescription {
    /// `federation` (the others join through the operator's config).
    pub kind: String,
    /// Base URL of the member.
    pub endpoint: String,
}

/// Write-only credentials.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The bearer token the broker presents to the member.
    pub token: String,
}

/// `POST /v1/partner-applications`: a partner's self-description.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfDescription {
    /// The member id it asks for.
    pub member_id: String,
    /// Legal name.
    pub name: String,
    /// Country of incorporation (ISO 3166-1 alpha-2).
    pub country: String,
    /// Jurisdictions it serves.
    pub jurisdictions: Vec<String>,
    /// Certifications it holds.
    #[serde(default)]
    pub certifications: Vec<String>,
    /// Evidence references for the certifications.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// `instance`, `volume`, `bucket`.
    pub services: Vec<String>,
    /// How to reach it.
    pub adapter: AdapterDescription,
    /// Write-only; sealed at rest and never returned.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Size mapping; discovered from the member's capabilities when absent.
    #[serde(default)]
    pub sizes: BTreeMap<String, String>,
    /// Image mapping; discovered when absent.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Price catalogue (kept for metering).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub prices: Vec<serde_json::Value>,
}

/// What the API shows of an application (never its credentials).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplicationView {
    /// Application id.
    pub id: String,
    /// The member it would create.
    pub member_id: String,
    /// `conformance_running`, `conformance_failed`, `awaiting_approval`, `approved`, `rejected`.
    pub status: String,
    /// The self-description, credentials removed.
    #[schema(value_type = Object)]
    pub description: serde_json::Value,
    /// Whether credentials were given (they are never shown).
    pub has_credentials: bool,
    /// The conformance report, once run.
    #[schema(value_type = Option<Object>)]
    pub conformance: Option<serde_json::Value>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&ApplicationRow> for ApplicationView {
    fn from(row: &ApplicationRow) -> Self {
        Self {
            id: row.id.clone(),
            member_id: row.member_id.clone(),
            status: row.status.clone(),
            description: row.description.clone(),
            has_credentials: row.credentials.is_some(),
            conformance: row.conformance.clone(),
            decided_by: row.decided_by.clone(),
            reason: row.reason.clone(),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

fn invalid(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_field(format!("`{field}`: {e}"))
}

fn audit(
    principal: &Principal,
    action: &str,
    member: &str,
    application: &str,
    outcome: &str,
    details: serde_json::Value,
) -> AuditEntry {
    let mut details = details;
    details["application"] = application.into();
    details["member"] = member.into();
    AuditEntry {
        actor: principal.subject.clone(),
        roles: principal.role_names(),
        tenant: None,
        action: action.into(),
        resource_id: Some(member.to_owned()),
        outcome: outcome.into(),
        request_id: principal.request_id.clone(),
        details,
    }
}

fn system(
    action: &str,
    member: &str,
    application: &str,
    outcome: &str,
    details: serde_json::Value,
) -> AuditEntry {
    let system = Principal {
        issuer: String::new(),
        subject: "system:conformance".into(),
        roles: Default::default(),
        tenant: None,
        member: None,
        request_id: None,
    };
    audit(&system, action, member, application, outcome, details)
}

/// Validates and stores an application, then starts its conformance run.
pub async fn submit(
    state: &AppState,
    principal: &Principal,
    description: SelfDescription,
    canonical: &serde_json::Value,
) -> ApiResult<ApplicationRow> {
    let member_id = MemberId::parse(&description.member_id).map_err(|e| invalid("member_id", e))?;
    if !principal.has(Role::Operator) && principal.member.as_ref() != Some(&member_id) {
        return Err(ApiError::forbidden(
            "a partner applies for its own member id only (the token's `member` claim)",
        ));
    }
    Jurisdiction::parse(&description.country).map_err(|e| invalid("country", e))?;
    if description.jurisdictions.is_empty() {
        return Err(invalid("jurisdictions", "at least one"));
    }
    for j in &description.jurisdictions {
        Jurisdiction::parse(j).map_err(|e| invalid("jurisdictions", e))?;
    }
    let certifications = description
        .certifications
        .iter()
        .map(|c| Certification::parse(c).map_err(|e| invalid("certifications", e)))
        .collect::<ApiResult<Vec<_>>>()?;
    for evidence in &description.evidence {
        let cert =
            Certification::parse(&evidence.certification).map_err(|e| invalid("evidence", e))?;
        if !certifications.contains(&cert) {
            return Err(invalid(
                "evidence",
                format!("`{cert}` is not among `certifications`"),
            ));
        }
    }
    if description.services.is_empty() {
        return Err(invalid("services", "at least one"));
    }
    for s in &description.services {
        ResourceType::parse(s).map_err(|e| invalid("services", e))?;
    }
    for size in description.sizes.keys() {
        SizeName::parse(size).map_err(|e| invalid("sizes", e))?;
    }
    for image in description.images.keys() {
        ImageName::parse(image).map_err(|e| invalid("images", e))?;
    }
    let prices: Vec<alliance_core::billing::Price> =
        serde_json::from_value(serde_json::Value::Array(description.prices.clone()))
            .map_err(|e| invalid("prices", e))?;
    alliance_core::billing::PriceCatalogue::new(&prices).map_err(|e| invalid("prices", e))?;
    if description.adapter.kind != "federation" {
        return Err(invalid("adapter.kind", "only `federation` members apply through the API; OpenStack and EC2 members are added by the operator's config"));
    }
    crate::endpoints::check_member_endpoint(
        &description.adapter.endpoint,
        &state.config.security.allowed_member_networks,
    )
    .await
    .map_err(|why| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "security.endpoint_not_allowed",
            why,
        )
    })?;
    if state.members.get(member_id.as_str()).is_some()
        || state.store.member_id_taken(member_id.as_str()).await?
    {
        return Err(ApiError::conflict(format!(
            "member id `{member_id}` is taken"
        )));
    }
    let credentials = match &description.credentials {
        Some(c) => Some(
            state
                .sealer
                .seal(
                    serde_json::json!({ "token": c.token })
                        .to_string()
                        .as_bytes(),
                    member_id.as_str(),
                )
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let mut public = canonical.clone();
    if let Some(obj) = public.as_object_mut() {
        obj.remove("credentials");
    }
    let now = now_ms();
    let row = ApplicationRow {
        id: format!("app-{}", uuid::Uuid::now_v7().simple()),
        member_id: member_id.to_string(),
        submitted_by: format!("{}|{}", principal.issuer, principal.subject),
        status: "conformance_running".into(),
        description: public,
        credentials,
        conformance: None,
        decided_by: None,
        reason: None,
        created_at: now,
        updated_at: now,
    };
    let entry = audit(
        principal,
        "partner_application.submit",
        member_id.as_str(),
        &row.id,
        "accepted",
        serde_json::json!({ "endpoint": description.adapter.endpoint }),
    );
    state.store.insert_application(&row, &entry).await?;
    spawn_conformance(
        state.clone(),
        row.clone(),
        description.credentials.map(|c| c.token),
    );
    Ok(row)
}

/// Runs the conformance suite for an application in the background.
pub fn spawn_conformance(state: AppState, row: ApplicationRow, token: Option<String>) {
    tokio::spawn(async move {
        let allowed = state.members.allowed_destinations().clone();
        let (status, report) = conformance(&row, token, allowed).await;
        let entry = system(
            "partner_application.conformance",
            &row.member_id,
            &row.id,
            status,
            serde_json::json!({}),
        );
        match state
            .store
            .set_conformance(&row.id, status, &report, &entry, now_ms())
            .await
        {
            Ok(_) => {
                tracing::info!(application = %row.id, member.id = %row.member_id, status, "conformance finished")
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
) -> (&'static str, serde_json::Value) {
    let failed = |why: String| {
        (
            "conformance_failed",
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
        "awaiting_approval"
    } else {
        "conformance_failed"
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
    for row in state.store.applications_in("conformance_running").await? {
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

/// Approves an application: the member becomes active at once.
pub async fn approve(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<ApplicationRow> {
    let row = state
        .store
        .application(id)
        .await?
        .ok_or_else(|| ApiError::not_found("partner application", id))?;
    if row.status != "awaiting_approval" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "partner_application.not_approvable",
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
        endpoint: d["adapter"]["endpoint"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        prices: serde_json::from_value(d["prices"].clone()).unwrap_or_default(),
    };
    let token = match &row.credentials {
        Some(sealed) => state
            .sealer
            .open_token(sealed, &row.member_id)
            .map_err(ApiError::internal)?,
        None => None,
    };
    let entry = definition
        .to_entry(
            token,
            Duration::from_millis(state.config.operations.call_timeout_ms),
            state.members.allowed_destinations(),
        )
        .map_err(ApiError::internal)?;
    let audit_entry = audit(
        principal,
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
            now_ms(),
        )
        .await?
    {
        return Err(ApiError::conflict(
            "the application changed meanwhile; read it again",
        ));
    }
    state.members.insert(entry, MemberStatus::Active);
    tracing::info!(member.id = %definition.id, "member joined the alliance");
    state
        .store
        .application(id)
        .await?
        .ok_or_else(|| ApiError::not_found("partner application", id))
}

/// Rejects an application.
pub async fn reject(
    state: &AppState,
    principal: &Principal,
    id: &str,
    reason: Option<&str>,
) -> ApiResult<ApplicationRow> {
    let row = state
        .store
        .application(id)
        .await?
        .ok_or_else(|| ApiError::not_found("partner application", id))?;
    let entry = audit(
        principal,
        "partner_application.reject",
        &row.member_id,
        id,
        "succeeded",
        serde_json::json!({ "reason": reason }),
    );
    let decided_by = format!("{}|{}", principal.issuer, principal.subject);
    if !state
        .store
        .reject_application(id, &decided_by, reason, &entry, now_ms())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "partner_application.not_rejectable",
            format!("the application is {}", row.status),
        ));
    }
    state
        .store
        .application(id)
        .await?
        .ok_or_else(|| ApiError::not_found("partner application", id))
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
    let entry = AuditEntry {
        actor: principal.subject.clone(),
        roles: principal.role_names(),
        tenant: None,
        action: format!("member.{name}"),
        resource_id: Some(id.to_owned()),
        outcome: "succeeded".into(),
        request_id: principal.request_id.clone(),
        details: serde_json::json!({ "to": to.as_str() }),
    };
    match state
        .store
        .transition_member(&member, from, to, &entry, now_ms())
        .await?
    {
        Transition::NotFound => Err(ApiError::not_found("member", id)),
        Transition::Refused(current) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "member.invalid_transition",
            format!("cannot {name} a member that is {current}"),
        )),
        Transition::HasResources(n) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "member.has_resources",
            format!("the member still holds {n} resources; drain it first"),
        )),
        Transition::Done => {
            state.members.set_status(&member, to);
            tracing::info!(member.id = %member, status = to.as_str(), "member lifecycle changed");
            Ok(())
        }
    }
}
