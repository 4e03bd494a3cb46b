//! Nova servers: how a server document reads and what a server is created with; finding,
//! reading, creating, deleting and listing the broker's servers is the code servers and
//! volumes share in `kept.rs` (compute microversion 2.52, for tags at creation and as a
//! list filter).
//!
//! Invariant: every broker server carries the tags `alliance` and `alliance:<broker id>` and
//! the broker id and tenant in its metadata; a create first searches for an earlier attempt
//! by that tag and returns it, so a create repeated after a crash or a timeout never makes a
//! second server.

use alliance_adapter_api::{
    AdapterError, ErrorKind, ErrorSource, Instances, MemberResource, MemberResourceStatus,
    ResourceSpec, Retry,
};
use alliance_core::{ResourceType, TenantId};
use serde_json::{json, Value};

use crate::kept::{Kept, KeptKind};
use crate::transport::{META_BROKER_ID, META_TENANT};
use crate::OpenStackAdapter;

/// The compute microversion the adapter speaks (2.52: tags at creation and as a filter).
pub const COMPUTE_MICROVERSION: &str = "2.52";
/// The tag every broker server carries.
pub const TAG_MARKER: &str = "alliance";

impl OpenStackAdapter {
    /// The headers asking Nova for the compute microversion the adapter speaks.
    pub(crate) fn compute_headers() -> [(&'static str, &'static str); 2] {
        [
            ("openstack-api-version", "compute 2.52"),
            ("x-openstack-nova-api-version", COMPUTE_MICROVERSION),
        ]
    }

    pub(crate) fn broker_tag(broker_id: &str) -> Result<String, AdapterError> {
        let tag = format!("{TAG_MARKER}:{broker_id}");
        if tag.len() > 60 || tag.contains(',') || tag.contains('/') {
            return Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                format!("`{broker_id}` cannot be a Nova server tag"),
            ));
        }
        Ok(tag)
    }

    /// A server from its Nova document; `None` for a deleted one or one without an id.
    pub(crate) fn server_of(v: &Value) -> Option<MemberResource> {
        let id = v.get("id")?.as_str()?;
        let status = v.get("status").and_then(Value::as_str).unwrap_or("BUILD");
        let task = v.get("OS-EXT-STS:task_state").and_then(Value::as_str);
        let status = match (status, task) {
            ("DELETED" | "SOFT_DELETED", _) => return None,
            (_, Some("deleting")) => MemberResourceStatus::Deleting,
            ("BUILD", _) => MemberResourceStatus::Provisioning,
            ("ERROR", _) => MemberResourceStatus::Error,
            _ => MemberResourceStatus::Active,
        };
        let meta = v.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        Some(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: id.to_owned(),
            broker_id: text(META_BROKER_ID).map(str::to_owned),
            tenant: text(META_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: v
                .get("fault")
                .and_then(|f| f.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            observed: crate::usable::server_observed(v),
        })
    }

    /// The server a create answered: Nova answers only its id.
    pub(crate) fn created_server(item: &Value, spec: &ResourceSpec) -> Option<MemberResource> {
        Some(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: item.get("id")?.as_str()?.to_owned(),
            broker_id: Some(spec.broker_id.clone()),
            tenant: Some(spec.tenant.clone()),
            status: MemberResourceStatus::Provisioning,
            detail: None,
            observed: Default::default(),
        })
    }
}

impl KeptKind for Instances {
    const KIND: Kept = Kept::Server;

    fn create_body(a: &OpenStackAdapter, spec: &ResourceSpec) -> Result<Value, AdapterError> {
        let flavour = a.mapping.size(spec)?;
        let image = a.mapping.image(spec)?;
        let networks = match a.config.network.as_deref() {
            // A member without tenant networking: servers without ports.
            Some("none") => json!("none"),
            Some(id) => json!([{ "uuid": id }]),
            None => json!("auto"),
        };
        let mut metadata =
            json!({ META_BROKER_ID: spec.broker_id, META_TENANT: spec.tenant.as_str() });
        if let Some((key, value)) = a.public_ip_metadata(spec)? {
            metadata[key] = json!(value);
        }
        Ok(json!({ "server": {
            "name": spec.name,
            "imageRef": image,
            "flavorRef": flavour,
            "networks": networks,
            "metadata": metadata,
            "tags": [TAG_MARKER, OpenStackAdapter::broker_tag(&spec.broker_id)?],
        } }))
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn servers_are_read_from_their_documents() {
        let s = OpenStackAdapter::server_of(&json!({"id": "s1", "status": "BUILD", "metadata": {"alliance_broker_id": "ins-1", "alliance_tenant": "acme"}})).unwrap();
        assert_eq!(
            (s.status, s.broker_id.as_deref()),
            (MemberResourceStatus::Provisioning, Some("ins-1"))
        );
        let s = OpenStackAdapter::server_of(
            &json!({"id": "s1", "status": "ERROR", "fault": {"message": "No valid host"}}),
        )
        .unwrap();
        assert_eq!(
            (s.status, s.detail.as_deref()),
            (MemberResourceStatus::Error, Some("No valid host"))
        );
        let s = OpenStackAdapter::server_of(
            &json!({"id": "s1", "status": "ACTIVE", "OS-EXT-STS:task_state": "deleting"}),
        )
        .unwrap();
        assert_eq!(s.status, MemberResourceStatus::Deleting);
        assert!(OpenStackAdapter::server_of(&json!({"id": "s1", "status": "DELETED"})).is_none());
        assert!(OpenStackAdapter::broker_tag(&"x".repeat(60)).is_err());
    }
}
