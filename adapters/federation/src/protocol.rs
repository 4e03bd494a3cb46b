//! Wire types of `/federation/v1`, shared by the adapter and the reference member.

use alliance_adapter_api::{
    Capability, InstanceAccess, MemberResource, MemberResourceStatus, ObjectMethod, Observed,
};
use alliance_core::ResourceType;
use serde::{Deserialize, Serialize};

/// The protocol version path prefix.
pub const PREFIX: &str = "/federation/v1";

/// The protocol version this crate speaks (1.1 adds actions, attachments and object URLs,
/// each advertised in `capabilities`).
pub const VERSION: &str = "1.1";

/// `GET /federation/v1/capabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Always `federation/v1`.
    pub protocol: String,
    /// The member's id.
    pub member_id: String,
    /// ISO 3166-1 alpha-2 codes it serves.
    pub jurisdictions: Vec<String>,
    /// `instance`, `volume`, `bucket`.
    pub services: Vec<ResourceType>,
    /// Broker size name → the member's flavour.
    #[serde(default)]
    pub sizes: std::collections::BTreeMap<String, String>,
    /// Broker image name → the member's image id.
    #[serde(default)]
    pub images: std::collections::BTreeMap<String, String>,
    /// 1.1: the minor version the member speaks (absent: 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// 1.1: what it offers beyond create, read and delete (`instance.access`,
    /// `instance.actions`, `volume.attach`, `bucket.urls`); absent: nothing.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Body of `PUT /federation/v1/resources/{volume}/attachment` (1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The broker's id of the instance (at the same member).
    pub instance: String,
}

/// Body of `POST /federation/v1/resources/{bucket}/urls` (1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlRequest {
    /// `GET`, `PUT` or `DELETE`.
    pub method: ObjectMethod,
    /// The object's key.
    pub object: String,
    /// Seconds, 1 to 43200.
    pub expires_in: u64,
}

/// Answer of `POST /federation/v1/resources/{bucket}/urls` (1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUrlAnswer {
    /// The URL at the member.
    pub url: String,
    /// When it stops working, seconds since the epoch.
    pub expires_at: i64,
}

/// Body of `PUT /federation/v1/resources/{broker_resource_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResource {
    /// Kind.
    pub resource_type: ResourceType,
    /// The tenant's name for it.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// Where it must live.
    pub jurisdiction: String,
    /// Data class.
    pub data_class: String,
    /// Instances: broker size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Instances: broker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Volumes: GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    /// Instances (1.1, capability `instance.access`): SSH key, user data, ingress rules,
    /// public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<InstanceAccess>,
}

/// A resource as a member reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The member's own id.
    pub id: String,
    /// The broker's id.
    pub broker_resource_id: String,
    /// Kind.
    pub resource_type: ResourceType,
    /// Owning tenant.
    pub tenant: String,
    /// `provisioning`, `active`, `deleting` or `error`.
    pub status: MemberResourceStatus,
    /// Why, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// 1.1: addresses and power state (instances), `attached_to` and `device` (volumes),
    /// `endpoint` (buckets), as the member reports them.
    #[serde(flatten, default)]
    pub observed: Observed,
}

impl From<&MemberResource> for Resource {
    fn from(r: &MemberResource) -> Self {
        Self {
            id: r.member_resource_id.clone(),
            broker_resource_id: r.broker_id.clone().unwrap_or_default(),
            resource_type: r.resource_type,
            tenant: r
                .tenant
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            status: r.status,
            detail: r.detail.clone(),
            observed: r.observed.clone(),
        }
    }
}

/// `GET /federation/v1/resources` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceList {
    /// The resources.
    pub items: Vec<Resource>,
    /// The next page, or null.
    pub next_page_token: Option<String>,
}
