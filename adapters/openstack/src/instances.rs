//! Nova servers: how a server document reads, and finding, reading, creating, deleting and
//! listing the broker's servers (compute microversion 2.52, for tags at creation and as a
//! list filter).
//!
//! Invariant: every broker server carries the tags `alliance` and `alliance:<broker id>` and
//! the broker id and tenant in its metadata; a create first searches for an earlier attempt
//! by that tag and returns it, so a create repeated after a crash or a timeout never makes a
//! second server.

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, MemberResourceStatus,
    ResourceRef, ResourceSpec, Retry,
};
use alliance_core::{ResourceType, TenantId};
use serde_json::{json, Value};

use crate::transport::{is_listed, unreadable_create, Kept, COMPUTE, META_BROKER_ID, META_TENANT};
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

    fn broker_tag(broker_id: &str) -> Result<String, AdapterError> {
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
        })
    }

    async fn servers(
        &self,
        ctx: &CallContext,
        tags: &str,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let items = self
            .paged(
                ctx,
                COMPUTE,
                "/servers/detail",
                ("tags", tags),
                &Self::compute_headers(),
                "servers",
            )
            .await?;
        Ok(items.iter().filter_map(Self::server_of).collect())
    }

    async fn find_server(
        &self,
        ctx: &CallContext,
        broker_id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let tag = Self::broker_tag(broker_id)?;
        Ok(self
            .servers(ctx, &tag)
            .await?
            .into_iter()
            .find(|s| s.broker_id.as_deref() == Some(broker_id)))
    }

    /// A server by its member id when known, else by its broker tag.
    pub(crate) async fn get_server(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        match &r.member_resource_id {
            Some(id) => self.fetch(ctx, Kept::Server, id).await,
            None => self.find_server(ctx, &r.broker_id).await,
        }
    }

    /// Creates a server, or returns the one an earlier attempt made.
    pub(crate) async fn create_server(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self.find_server(ctx, &spec.broker_id).await? {
            return Ok(earlier);
        }
        let flavour = alliance_adapter_api::member_name(
            &self.mapping.sizes,
            spec.size.as_ref().map(|s| s.as_str()),
            "size",
        )?;
        let image = alliance_adapter_api::member_name(
            &self.mapping.images,
            spec.image.as_ref().map(|i| i.as_str()),
            "image",
        )?;
        let networks = match &self.config.network {
            Some(id) => json!([{ "uuid": id }]),
            None => json!("auto"),
        };
        let body = json!({ "server": {
            "name": spec.name,
            "imageRef": image,
            "flavorRef": flavour,
            "networks": networks,
            "metadata": { META_BROKER_ID: spec.broker_id, META_TENANT: spec.tenant.as_str() },
            "tags": [TAG_MARKER, Self::broker_tag(&spec.broker_id)?],
        } });
        let created = self
            .submit_create(
                ctx,
                COMPUTE,
                "/servers",
                &Self::compute_headers(),
                &body,
                &spec.broker_id,
            )
            .await?;
        let id = created
            .get("server")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable_create("Nova"))?;
        Ok(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: id.to_owned(),
            broker_id: Some(spec.broker_id.clone()),
            tenant: Some(spec.tenant.clone()),
            status: MemberResourceStatus::Provisioning,
            detail: None,
        })
    }

    /// Deletes a server (one already gone is deleted).
    pub(crate) async fn delete_server(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<(), AdapterError> {
        let Some(found) = self.get_server(ctx, r).await? else {
            return Ok(());
        };
        self.remove(ctx, Kept::Server, &found.member_resource_id)
            .await
    }

    /// The broker's servers (`tenant`'s when given), found by the `alliance` tag.
    pub(crate) async fn list_servers(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        Ok(self
            .servers(ctx, TAG_MARKER)
            .await?
            .into_iter()
            .filter(|s| is_listed(s, tenant))
            .collect())
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
