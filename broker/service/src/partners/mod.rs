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

pub mod conformance;
pub mod kinds;
pub mod lifecycle;

use std::collections::BTreeMap;

use alliance_core::{
    ApplicationStatus, Certification, ImageName, Jurisdiction, MemberId, ResourceType, SizeName,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::store::{ApplicationRow, AuditEntry};

pub use conformance::{resume_conformance, spawn_conformance};
pub use kinds::{AdapterDescription, Credentials};
pub use lifecycle::{approve, reject, transition, Lifecycle};

/// A certification with the reference of its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The certification.
    pub certification: String,
    /// Where the evidence is (certificate number, URL, document id).
    pub reference: String,
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

pub(crate) fn invalid(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_field(format!("`{field}`: {e}"))
}

/// An audit event about an application and the member it would create: by `by`, or by
/// the conformance job when `None`.
pub(crate) fn application_event(
    by: Option<&Principal>,
    action: &str,
    member: &str,
    application: &str,
    outcome: &str,
    mut details: serde_json::Value,
) -> AuditEntry {
    details["application"] = application.into();
    details["member"] = member.into();
    let resource = Some(member.to_owned());
    match by {
        Some(principal) => principal.audit(action, None, resource, outcome, details),
        None => AuditEntry::system(
            "system:conformance",
            None,
            action.to_owned(),
            resource,
            outcome,
            details,
        ),
    }
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
    alliance_core::check_text(&description.name, 200).map_err(|e| invalid("name", e))?;
    if description.evidence.len() > 32 {
        return Err(invalid("evidence", "at most 32 references"));
    }
    for evidence in &description.evidence {
        alliance_core::check_text(&evidence.reference, 500)
            .map_err(|e| invalid("evidence.reference", e))?;
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
    let offers_instances = description.services.iter().any(|s| s == "instance");
    description.adapter.validate(
        description.credentials.as_ref(),
        offers_instances,
        !description.sizes.is_empty(),
        !description.images.is_empty(),
    )?;
    let allowed = state.members.allowed_destinations();
    for (field, url) in description.adapter.urls() {
        allowed.check_url(url).await.map_err(|why| {
            ApiError::new(ErrorCode::EndpointNotAllowed, format!("`{field}`: {why}"))
        })?;
    }
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
                    serde_json::to_string(c)
                        .map_err(ApiError::internal)?
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
    let now = state.clock.now_ms();
    let row = ApplicationRow {
        id: format!("app-{}", uuid::Uuid::now_v7().simple()),
        member_id: member_id.to_string(),
        submitted_by: format!("{}|{}", principal.issuer, principal.subject),
        status: ApplicationStatus::ConformanceRunning,
        description: public,
        credentials,
        conformance: None,
        decided_by: None,
        reason: None,
        created_at: now,
        updated_at: now,
    };
    let entry = application_event(
        Some(principal),
        "partner_application.submit",
        member_id.as_str(),
        &row.id,
        "accepted",
        serde_json::json!({ "kind": description.adapter.kind, "endpoint": description.adapter.main_url() }),
    );
    if !state.store.insert_application(&row, &entry).await? {
        return Err(ApiError::conflict(format!(
            "member id `{member_id}` is taken"
        )));
    }
    spawn_conformance(state.clone(), row.clone(), description.credentials);
    Ok(row)
}
