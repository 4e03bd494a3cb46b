//! Cinder v3 volumes: how a volume document reads and what a volume is created with;
//! finding, reading, creating, deleting and listing the broker's volumes is the code servers
//! and volumes share in `kept.rs`.
//!
//! Invariant: every broker volume carries the broker id and tenant in its metadata; a create
//! first searches Cinder's `metadata` filter for an earlier attempt and returns it, so a
//! create repeated after a crash or a timeout never makes a second volume; a volume still
//! being created is not deleted (Cinder refuses it) but reported as transient.

use alliance_adapter_api::{
    AdapterError, MemberResource, MemberResourceStatus, ResourceSpec, Volumes,
};
use alliance_core::{ResourceType, TenantId};
use serde_json::{json, Value};

use crate::kept::{Kept, KeptKind};
use crate::transport::{META_BROKER_ID, META_TENANT};
use crate::OpenStackAdapter;

/// The block-storage microversion the adapter speaks.
pub const VOLUME_MICROVERSION: &str = "3.0";

impl OpenStackAdapter {
    /// The headers asking Cinder for the block-storage microversion the adapter speaks.
    pub(crate) fn volume_headers() -> [(&'static str, &'static str); 1] {
        [("openstack-api-version", "volume 3.0")]
    }

    /// A volume from its Cinder document; `None` for a deleted one or one without an id.
    pub(crate) fn volume_of(v: &Value) -> Option<MemberResource> {
        let id = v.get("id")?.as_str()?;
        let status = match v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("creating")
        {
            "creating" | "downloading" => MemberResourceStatus::Provisioning,
            "deleting" => MemberResourceStatus::Deleting,
            "error" | "error_deleting" | "error_restoring" | "error_extending" => {
                MemberResourceStatus::Error
            }
            "deleted" => return None,
            _ => MemberResourceStatus::Active,
        };
        let meta = v.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        Some(MemberResource {
            resource_type: ResourceType::Volume,
            member_resource_id: id.to_owned(),
            broker_id: text(META_BROKER_ID).map(str::to_owned),
            tenant: text(META_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: None,
            observed: crate::usable::volume_observed(v),
        })
    }
}

impl KeptKind for Volumes {
    const KIND: Kept = Kept::Volume;

    fn create_body(_: &OpenStackAdapter, spec: &ResourceSpec) -> Result<Value, AdapterError> {
        Ok(json!({ "volume": {
            "size": spec.volume_size_gb()?,
            "name": spec.name,
            "metadata": { META_BROKER_ID: spec.broker_id, META_TENANT: spec.tenant.as_str() },
        } }))
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn volumes_are_read_from_their_documents() {
        let v = OpenStackAdapter::volume_of(&json!({"id": "v1", "status": "available"})).unwrap();
        assert_eq!(v.status, MemberResourceStatus::Active);
    }
}
