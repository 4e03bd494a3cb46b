//! Volumes through the EC2 Query API: how a volume reads in a `CreateVolume` or
//! `DescribeVolumes` answer, and what `CreateVolume` is asked for; creating, reading,
//! listing and deleting (`DeleteVolume`) them is the code instances and volumes share in
//! `described.rs`.
//!
//! Invariant: a create first searches for an earlier attempt by its `alliance:broker-id`
//! tag and returns it (a member may ignore `ClientToken`), so a repeated create never makes
//! a second volume; a volume still being created is not deleted but reported as transient.

use alliance_adapter_api::{
    AdapterError, MemberResource, MemberResourceStatus, ResourceSpec, Volumes,
};
use alliance_core::{ResourceType, TenantId};

use crate::described::{Described, DescribedKind, Params};
use crate::transport::{TAG_BROKER_ID, TAG_TENANT};
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
            observed: crate::usable::volume_observed(node),
        })
    }
}

impl DescribedKind for Volumes {
    const KIND: Described = Described::Volumes;

    fn create_params(a: &Ec2Adapter, spec: &ResourceSpec) -> Result<Params, AdapterError> {
        Ok(vec![
            ("AvailabilityZone".to_owned(), a.zone()),
            ("Size".to_owned(), spec.volume_size_gb()?.to_string()),
            ("VolumeType".to_owned(), a.config.volume_type.clone()),
        ])
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
