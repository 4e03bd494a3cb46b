//! The JSON shapes of the API (SPEC field names), built from store rows and service values.

use std::collections::BTreeMap;

use alliance_core::{Decision, ResourceType};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::idempotency::json_reply;
use crate::provisioning::placement::{candidates, Candidate};
use crate::store::StoredResponse;
use crate::store::{ApplicationRow, OperationRow, ResidencyRow, ResourceRow, TenantRow};
use crate::time::rfc3339;

/// An asynchronous operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    /// Operation id.
    pub id: String,
    /// `create` or `delete`.
    pub kind: String,
    /// `instance`, `volume` or `bucket`.
    pub resource_type: String,
    /// The resource.
    pub resource_id: String,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// The problem when failed.
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&OperationRow> for OperationView {
    fn from(op: &OperationRow) -> Self {
        Self {
            id: op.id.clone(),
            kind: op.kind.as_str().to_owned(),
            resource_type: op.resource_type.as_str().to_owned(),
            resource_id: op.resource_id.clone(),
            status: op.status.as_str().to_owned(),
            error: op.error.clone(),
            created_at: rfc3339(op.created_at),
            updated_at: rfc3339(op.updated_at),
        }
    }
}

/// The 202 reply of an accepted operation: its view, with `Location` to poll.
pub fn accepted(op: &OperationRow) -> ApiResult<StoredResponse> {
    json_reply(
        202,
        Some(format!("/v1/operations/{}", op.id)),
        &OperationView::from(op),
    )
}

/// Why a resource is where it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlacementView {
    /// The decision's reasons, in order.
    pub reasons: Vec<String>,
}

/// An instance, volume or bucket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResourceView {
    /// Broker id.
    pub id: String,
    /// `instance`, `volume` or `bucket`.
    pub resource_type: String,
    /// The tenant's name for it.
    pub name: String,
    /// Owner.
    pub tenant: String,
    /// Where it lives.
    pub jurisdiction: String,
    /// The member cloud that holds it.
    pub member: String,
    /// `provisioning`, `active`, `deleting`, `deleted` or `failed`.
    pub status: String,
    /// Data class.
    pub data_class: String,
    /// Instances: size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Instances: image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Volumes: size in GB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u64>,
    /// The member's own id for it, once known.
    pub member_resource_id: Option<String>,
    /// Instances: addresses as the member reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<AddressesView>,
    /// Instances: `running`, `stopped` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_state: Option<String>,
    /// Instances: the name of the SSH key installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    /// Instances: the SHA-256 (hex) of the user data; the data itself is never returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data_sha256: Option<String>,
    /// Instances: the inbound rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub ingress: Option<Vec<alliance_adapter_api::IngressRule>>,
    /// Instances: whether it has a public address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<bool>,
    /// Volumes: the instance it is attached to (null when detached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<Option<String>>,
    /// Volumes: the device it is attached as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Buckets: where its objects are served (sign URLs with `POST /v1/buckets/{id}/urls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The placement decision.
    pub placement: PlacementView,
    /// `ok`, or `outside_policy` when facts changed under it since it was placed (the
    /// tenant's jurisdictions, its member's certifications).
    pub compliance: String,
    /// Why it is outside the tenant's policy (absent when `ok`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance_reasons: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An instance's addresses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddressesView {
    /// Inside the member's network.
    pub private: Vec<String>,
    /// Reachable from the internet.
    pub public: Vec<String>,
}

impl From<&ResourceRow> for ResourceView {
    fn from(r: &ResourceRow) -> Self {
        let instance = r.resource_type == ResourceType::Instance;
        let reasons = r.placement.reasons.clone();
        Self {
            id: r.id.clone(),
            resource_type: r.resource_type.as_str().to_owned(),
            name: r.name.clone(),
            tenant: r.tenant_id.to_string(),
            jurisdiction: r.jurisdiction.to_string(),
            member: r.member_id.to_string(),
            status: r.status.as_str().to_owned(),
            data_class: r.data_class.to_string(),
            size: r.shape.size.as_ref().map(ToString::to_string),
            image: r.shape.image.as_ref().map(ToString::to_string),
            size_gb: r.shape.size_gb.map(u64::from),
            member_resource_id: r.member_resource_id.clone(),
            addresses: instance.then(|| {
                let a = r.observed.addresses.clone().unwrap_or_default();
                AddressesView {
                    private: a.private,
                    public: a.public,
                }
            }),
            power_state: instance.then(|| {
                r.observed
                    .power_state
                    .map_or("unknown", |p| p.as_str())
                    .to_owned()
            }),
            ssh_key: r.settings.ssh_key.clone(),
            user_data_sha256: r.settings.user_data_sha256.clone(),
            ingress: instance.then(|| r.settings.ingress.clone()),
            public_ip: instance.then_some(r.settings.public_ip),
            attached_to: (r.resource_type == ResourceType::Volume).then(|| r.attached_to.clone()),
            device: r.attached_to.as_ref().and(r.observed.device.clone()),
            endpoint: r.observed.endpoint.clone(),
            placement: PlacementView { reasons },
            compliance: "ok".to_owned(),
            compliance_reasons: Vec::new(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

impl ResourceView {
    /// The view with why it is outside its tenant's policy (`ok` when `reasons` is empty).
    pub fn with_compliance(mut self, reasons: Vec<String>) -> Self {
        self.compliance = crate::compliance::label(&reasons).to_owned();
        self.compliance_reasons = reasons;
        self
    }
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `page_token` for the next page; null on the last.
    pub next_page_token: Option<String>,
}

/// `?limit=&page_token=`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 500; 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// From the previous page.
    pub page_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// What the token pages over, so a token cannot be replayed on another list.
    l: String,
    /// Last key seen.
    a: String,
}

impl PageParams {
    /// The limit and the key after which to start, for the list named `list`.
    pub fn resolve(&self, list: &str) -> Result<(i64, Option<String>), ApiError> {
        let limit = match &self.limit {
            None => 50,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_query(format!(
                        "limit must be an integer from 1 to 500, got `{raw}`"
                    )))
                }
            },
        };
        let after = match &self.page_token {
            None => None,
            Some(token) => {
                let bad =
                    || ApiError::invalid_query("page_token is not a token this list gave out");
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .map_err(|_| bad())?;
                let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
                if cursor.l != list {
                    return Err(bad());
                }
                Some(cursor.a)
            }
        };
        Ok((limit, after))
    }
}

/// Builds a page from `limit + 1` fetched rows.
pub fn page<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    list: &str,
    key: impl Fn(&R) -> String,
    view: impl Fn(&R) -> T,
) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(50);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_page_token = if more {
        rows.last().map(|last| {
            let cursor = Cursor {
                l: list.to_owned(),
                a: key(last),
            };
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&cursor).unwrap_or_default())
        })
    } else {
        None
    };
    Page {
        items: rows.iter().map(view).collect(),
        next_page_token,
    }
}

/// A placement dry run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationView {
    /// The chosen member, or null.
    pub chosen: Option<String>,
    /// The effective jurisdiction.
    pub jurisdiction: String,
    /// The effective data class.
    pub data_class: String,
    /// Every member, best first.
    pub candidates: Vec<Candidate>,
    /// Constraints beyond the filters, e.g. a volume co-located with its instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

impl From<&Decision> for EvaluationView {
    fn from(d: &Decision) -> Self {
        Self {
            chosen: d.chosen().map(ToString::to_string),
            jurisdiction: d.jurisdiction.to_string(),
            data_class: d.data_class.to_string(),
            candidates: candidates(d),
            constraints: Vec::new(),
        }
    }
}

/// A member cloud.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// Member id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Jurisdictions served.
    pub jurisdictions: Vec<String>,
    /// Certifications held.
    pub certifications: Vec<String>,
    /// Services offered.
    pub services: Vec<String>,
    /// `active`, `suspended`, `draining` or `retired`.
    pub status: String,
    /// `up`, `degraded` or `down`.
    pub health: String,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    /// Tenant id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Home jurisdiction.
    pub home_jurisdiction: String,
    /// Allowed jurisdictions.
    pub allowed_jurisdictions: Vec<String>,
    /// Default data class.
    pub default_data_class: String,
    /// What its invoices are in (ISO 4217).
    pub billing_currency: String,
}

impl From<&TenantRow> for TenantView {
    fn from(t: &TenantRow) -> Self {
        Self {
            id: t.policy.id.to_string(),
            name: t.name.clone(),
            home_jurisdiction: t.policy.home_jurisdiction.to_string(),
            allowed_jurisdictions: t
                .policy
                .allowed_jurisdictions
                .iter()
                .map(ToString::to_string)
                .collect(),
            default_data_class: t.policy.default_data_class.to_string(),
            billing_currency: t.billing_currency.to_string(),
        }
    }
}

/// Counts per type in one jurisdiction.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct JurisdictionResidency {
    /// Instances.
    pub instance: u64,
    /// Volumes.
    pub volume: u64,
    /// Buckets.
    pub bucket: u64,
    /// Members holding them.
    pub members: Vec<String>,
}

/// One resource in the residency report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResidencyResource {
    /// Id.
    pub id: String,
    /// Kind.
    pub resource_type: String,
    /// Where.
    pub jurisdiction: String,
    /// Member.
    pub member: String,
    /// Status.
    pub status: String,
    /// `ok`, or `outside_policy` when facts changed under it since it was placed.
    pub compliance: String,
    /// Why it is outside the tenant's policy (absent when `ok`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compliance_reasons: Vec<String>,
}

/// Where all of a tenant's data lives.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResidencyView {
    /// Tenant.
    pub tenant: String,
    /// Per jurisdiction.
    pub by_jurisdiction: BTreeMap<String, JurisdictionResidency>,
    /// Every live resource.
    pub resources: Vec<ResidencyResource>,
    /// How many of them are outside the tenant's policy now.
    pub outside_policy: usize,
}

impl ResidencyView {
    /// Aggregates residency rows; `reasons` says why a row is outside the tenant's policy.
    pub fn build(
        tenant: &str,
        rows: &[ResidencyRow],
        reasons: impl Fn(&ResidencyRow) -> Vec<String>,
    ) -> Self {
        let mut by_jurisdiction: BTreeMap<String, JurisdictionResidency> = BTreeMap::new();
        for r in rows {
            let entry = by_jurisdiction
                .entry(r.jurisdiction.to_string())
                .or_default();
            match r.resource_type {
                ResourceType::Instance => entry.instance += 1,
                ResourceType::Volume => entry.volume += 1,
                ResourceType::Bucket => entry.bucket += 1,
            }
            let member = r.member_id.to_string();
            if !entry.members.contains(&member) {
                entry.members.push(member);
                entry.members.sort();
            }
        }
        let resources: Vec<ResidencyResource> = rows
            .iter()
            .map(|r| {
                let compliance_reasons = reasons(r);
                ResidencyResource {
                    id: r.id.clone(),
                    resource_type: r.resource_type.as_str().to_owned(),
                    jurisdiction: r.jurisdiction.to_string(),
                    member: r.member_id.to_string(),
                    status: r.status.as_str().to_owned(),
                    compliance: crate::compliance::label(&compliance_reasons).to_owned(),
                    compliance_reasons,
                }
            })
            .collect();
        Self {
            tenant: tenant.to_owned(),
            by_jurisdiction,
            outside_policy: resources
                .iter()
                .filter(|r| !r.compliance_reasons.is_empty())
                .count(),
            resources,
        }
    }
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
            status: row.status.as_str().to_owned(),
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
