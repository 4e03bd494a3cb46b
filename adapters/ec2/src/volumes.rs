//! Volumes through the EC2 Query API: how a volume reads in a `CreateVolume` or
//! `DescribeVolumes` answer, and creating (`CreateVolume`) and deleting (`DeleteVolume`)
//! the broker's volumes; reading and listing them is the shared `Describe*` code in
//! `transport.rs`.
//!
//! Invariant: a create first searches for an earlier attempt by its `alliance:broker-id`
//! tag and returns it (a member may ignore `ClientToken`), so a repeated create never makes
//! a second volume; a volume still being created is not deleted but reported as transient.

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, MemberResourceStatus,
    ResourceRef, ResourceSpec, Retry,
};
use alliance_adapter_http::MAX_BODY;
use alliance_core::{ResourceType, TenantId};

use crate::transport::{client_token, unreadable_create, Described, TAG_BROKER_ID, TAG_TENANT};
use crate::{xml, Ec2Adapter};

impl Ec2Adapter {
    /// A volume from its `item` (or a `CreateVolume` answer); `None` in an unknown state.
    pub(crate) fn volume_of(node: roxmltree::Node<'_, '_>) -> Option<MemberResource> {
        let id = xml::child(node, "volumeId")?;
        let status = match xml::child(node, "status")? {
            "creating" => MemberResourceStatus::Provisioning,
            "available" | "in-use" => MemberResourceStatus::Active,
            "deleting" => MemberResourceStatus::Deleting,
            "error" => MemberResourceStatus::Error,
            _ => return None,
        };
        let tags = xml::tags(node);
        Some(MemberResource {
            resource_type: ResourceType::Volume,
            member_resource_id: id.to_owned(),
            broker_id: tags.get(TAG_BROKER_ID).cloned(),
            tenant: tags.get(TAG_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: None,
        })
    }

    /// Creates a volume, or returns the one an earlier attempt made.
    pub(crate) async fn create_volume(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self
            .find(ctx, Described::Volumes, &spec.broker_id, false)
            .await?
        {
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
        let mut params = vec![
            ("AvailabilityZone".to_owned(), self.zone()),
            ("Size".to_owned(), size.to_string()),
            ("VolumeType".to_owned(), self.config.volume_type.clone()),
            ("ClientToken".to_owned(), client_token(&spec.broker_id)),
        ];
        params.extend(Self::tag_params(spec, "volume"));
        let body = self
            .submit_create(ctx, "CreateVolume", &params, &spec.broker_id)
            .await?;
        let mut created = xml::parse(&body)
            .ok()
            .and_then(|doc| Self::volume_of(doc.root_element()))
            .ok_or_else(|| unreadable_create("CreateVolume"))?;
        // Some members do not echo the tags in the CreateVolume answer.
        created
            .broker_id
            .get_or_insert_with(|| spec.broker_id.clone());
        created.tenant.get_or_insert_with(|| spec.tenant.clone());
        Ok(created)
    }

    /// Deletes a volume (one already gone, or being deleted, is deleted).
    pub(crate) async fn delete_volume(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<(), AdapterError> {
        let Some(found) = self.get_described(ctx, Described::Volumes, r).await? else {
            return Ok(());
        };
        match found.status {
            MemberResourceStatus::Deleting => return Ok(()),
            MemberResourceStatus::Provisioning => {
                return Err(AdapterError::unavailable(
                    "the volume is still being created; it is deleted once it is available",
                )
                .with_retry_after(std::time::Duration::from_secs(2)))
            }
            _ => {}
        }
        let params = [("VolumeId".to_owned(), found.member_resource_id)];
        match self
            .ec2(ctx, "DeleteVolume", &params, Retry::Safe, MAX_BODY)
            .await
        {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn volumes_are_read_from_create_answers() {
        let vol = roxmltree::Document::parse("<CreateVolumeResponse><volumeId>vol-1</volumeId><status>creating</status></CreateVolumeResponse>").unwrap();
        assert_eq!(
            Ec2Adapter::volume_of(vol.root_element()).unwrap().status,
            MemberResourceStatus::Provisioning
        );
    }
}
