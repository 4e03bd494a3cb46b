//! Instances through the EC2 Query API: how an instance reads in a `RunInstances` or
//! `DescribeInstances` answer, and what `RunInstances` is asked for; creating, reading,
//! listing and deleting (`TerminateInstances`) them is the code instances and volumes
//! share in `described.rs`.
//!
//! Invariant: a create first searches for an earlier attempt by its `alliance:broker-id`
//! tag, terminated ones included, and returns it (a member may ignore `ClientToken`), so a
//! repeated create never launches a second instance, nor relaunches one that died at launch.

use alliance_adapter_api::{
    AdapterError, Instances, MemberResource, MemberResourceStatus, ResourceSpec,
};
use alliance_core::{ResourceType, TenantId};

use crate::described::{Described, DescribedKind, Params};
use crate::transport::{TAG_BROKER_ID, TAG_TENANT};
use crate::{xml, Ec2Adapter};

impl Ec2Adapter {
    /// An instance; a terminated one is gone (`None`) unless `keep_terminated`, when it is
    /// an `error` carrying its state reason (an instance that died at launch).
    fn instance_of(node: roxmltree::Node<'_, '_>, keep_terminated: bool) -> Option<MemberResource> {
        let id = xml::child(node, "instanceId")?;
        let state = xml::child_node(node, "instanceState").and_then(|s| xml::child(s, "name"))?;
        let status = match state {
            "pending" => MemberResourceStatus::Provisioning,
            "running" | "stopping" | "stopped" => MemberResourceStatus::Active,
            "shutting-down" => MemberResourceStatus::Deleting,
            "terminated" if keep_terminated => MemberResourceStatus::Error,
            _ => return None,
        };
        let tags = xml::tags(node);
        Some(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: id.to_owned(),
            broker_id: tags.get(TAG_BROKER_ID).cloned(),
            tenant: tags.get(TAG_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: xml::child_node(node, "stateReason")
                .and_then(|r| xml::child(r, "message"))
                .map(str::to_owned),
            observed: crate::usable::instance_observed(node),
        })
    }

    /// The instances of a `RunInstances` or `DescribeInstances` answer.
    pub(crate) fn instances<'a>(
        doc: &'a roxmltree::Document<'a>,
        keep_terminated: bool,
    ) -> impl Iterator<Item = MemberResource> + 'a {
        xml::all(doc, "instancesSet")
            .flat_map(|set| set.children().filter(|c| c.tag_name().name() == "item"))
            .filter_map(move |node| Self::instance_of(node, keep_terminated))
    }
}

impl DescribedKind for Instances {
    const KIND: Described = Described::Instances;

    fn create_params(a: &Ec2Adapter, spec: &ResourceSpec) -> Result<Params, AdapterError> {
        let instance_type = a.mapping.size(spec)?;
        let mut params = vec![
            ("ImageId".to_owned(), a.mapping.image(spec)?),
            ("InstanceType".to_owned(), instance_type),
            ("MinCount".to_owned(), "1".to_owned()),
            ("MaxCount".to_owned(), "1".to_owned()),
        ];
        if let Some(zone) = &a.config.availability_zone {
            params.push(("Placement.AvailabilityZone".to_owned(), zone.clone()));
        }
        if let Some(subnet) = &a.config.subnet_id {
            params.push(("SubnetId".to_owned(), subnet.clone()));
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use alliance_adapter_api::{CallContext, MemberAdapter, ResourceRef};

    #[test]
    fn instances_are_read_from_describe_answers() {
        let doc = roxmltree::Document::parse(r#"<item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState><tagSet><item><key>alliance:broker-id</key><value>ins-1</value></item><item><key>alliance:tenant</key><value>acme</value></item></tagSet></item>"#).unwrap();
        let r = Ec2Adapter::instance_of(doc.root_element(), false).unwrap();
        assert_eq!(r.status, MemberResourceStatus::Active);
        assert_eq!(r.broker_id.as_deref(), Some("ins-1"));
        assert_eq!(r.tenant.as_ref().map(TenantId::as_str), Some("acme"));
        let gone = roxmltree::Document::parse("<item><instanceId>i-2</instanceId><instanceState><name>terminated</name></instanceState></item>").unwrap();
        assert!(Ec2Adapter::instance_of(gone.root_element(), false).is_none());
    }

    #[tokio::test]
    async fn an_instance_that_died_at_launch_is_reported_not_launched_again() {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: String| {
                if body.contains("Action=RunInstances") {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                async move {
                    "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-dead</instanceId><instanceState><name>terminated</name></instanceState><stateReason><message>Server.InsufficientInstanceCapacity</message></stateReason><tagSet><item><key>alliance:broker-id</key><value>ins-1</value></item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"
                }
            }),
        );
        let a = Ec2Adapter::against(app).await;
        let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
        let spec = ResourceSpec {
            broker_id: "ins-1".into(),
            resource_type: ResourceType::Instance,
            name: "web".into(),
            tenant: TenantId::parse("acme").unwrap(),
            jurisdiction: alliance_core::Jurisdiction::parse("FR").unwrap(),
            data_class: alliance_core::DataClassName::parse("standard").unwrap(),
            size: None,
            image: None,
            size_gb: None,
            access: None,
        };
        let found = a.create(&ctx, &spec).await.unwrap();
        assert_eq!(found.status, MemberResourceStatus::Error);
        assert_eq!(
            found.detail.as_deref(),
            Some("Server.InsufficientInstanceCapacity")
        );
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "not launched again"
        );
        // Read by its id, the terminated instance is gone (a delete can finish).
        let reference = ResourceRef {
            resource_type: ResourceType::Instance,
            broker_id: "ins-1".into(),
            member_resource_id: Some("i-dead".into()),
        };
        assert!(a.get(&ctx, &reference).await.unwrap().is_none());
    }
}
