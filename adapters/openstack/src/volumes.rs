//! Cinder v3 volumes: how a volume document reads, and finding, reading, creating, deleting
//! and listing the broker's volumes.
//!
//! Invariant: every broker volume carries the broker id and tenant in its metadata; a create
//! first searches Cinder's `metadata` filter for an earlier attempt and returns it, so a
//! create repeated after a crash or a timeout never makes a second volume; a volume still
//! being created is not deleted (Cinder refuses it) but reported as transient.

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, MemberResourceStatus,
    ResourceRef, ResourceSpec, Retry,
};
use alliance_core::{ResourceType, TenantId};
use serde_json::{json, Value};

use crate::transport::{is_listed, unreadable_create, Kept, META_BROKER_ID, META_TENANT, VOLUME};
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
        })
    }

    async fn volumes(
        &self,
        ctx: &CallContext,
        metadata: &Value,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let items = self
            .paged(
                ctx,
                VOLUME,
                "/volumes/detail",
                ("metadata", &metadata.to_string()),
                &Self::volume_headers(),
                "volumes",
            )
            .await?;
        Ok(items.iter().filter_map(Self::volume_of).collect())
    }

    async fn find_volume(
        &self,
        ctx: &CallContext,
        broker_id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        Ok(self
            .volumes(ctx, &json!({ META_BROKER_ID: broker_id }))
            .await?
            .into_iter()
            .find(|v| v.broker_id.as_deref() == Some(broker_id)))
    }

    /// A volume by its member id when known, else by its metadata.
    pub(crate) async fn get_volume(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        match &r.member_resource_id {
            Some(id) => self.fetch(ctx, Kept::Volume, id).await,
            None => self.find_volume(ctx, &r.broker_id).await,
        }
    }

    /// Creates a volume, or returns the one an earlier attempt made.
    pub(crate) async fn create_volume(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self.find_volume(ctx, &spec.broker_id).await? {
            return Ok(earlier);
        }
        let size = spec.size_gb.ok_or_else(|| {
            AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                "a volume needs size_gb",
            )
        })?;
        let body = json!({ "volume": {
            "size": size,
            "name": spec.name,
            "metadata": { META_BROKER_ID: spec.broker_id, META_TENANT: spec.tenant.as_str() },
        } });
        let created = self
            .submit_create(
                ctx,
                VOLUME,
                "/volumes",
                &Self::volume_headers(),
                &body,
                &spec.broker_id,
            )
            .await?;
        created
            .get("volume")
            .and_then(Self::volume_of)
            .ok_or_else(|| unreadable_create("Cinder"))
    }

    /// Deletes a volume (one already gone, or being deleted, is deleted).
    pub(crate) async fn delete_volume(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<(), AdapterError> {
        let Some(found) = self.get_volume(ctx, r).await? else {
            return Ok(());
        };
        match found.status {
            MemberResourceStatus::Deleting => return Ok(()),
            // Cinder refuses to delete a volume that is still being created (400).
            MemberResourceStatus::Provisioning => {
                return Err(AdapterError::unavailable(
                    "the volume is still being created; it is deleted once it is available",
                )
                .with_retry_after(std::time::Duration::from_secs(2)))
            }
            _ => {}
        }
        self.remove(ctx, Kept::Volume, &found.member_resource_id)
            .await
    }

    /// The broker's volumes (`tenant`'s when given), found by their metadata.
    pub(crate) async fn list_volumes(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let filter = match tenant {
            Some(t) => json!({ META_TENANT: t.as_str() }),
            None => json!({}),
        };
        Ok(self
            .volumes(ctx, &filter)
            .await?
            .into_iter()
            .filter(|v| is_listed(v, tenant))
            .collect())
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
