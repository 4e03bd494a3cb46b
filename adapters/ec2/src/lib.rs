//! The broker's adapter for EC2- and S3-compatible member clouds.
//!
//! Instances and volumes go through the EC2 Query API (`RunInstances`, `DescribeInstances`,
//! `TerminateInstances`, `CreateVolume`, `DescribeVolumes`, `DeleteVolume`), buckets through
//! S3 REST (`CreateBucket` with the location constraint, `HeadBucket`, `DeleteBucket`), every
//! request signed with SigV4 by `aws-sigv4` over the member's pooled reqwest client (see
//! docs/adapters.md for why not the AWS SDK crates).
//!
//! Idempotency. `RunInstances` and `CreateVolume` carry `ClientToken` = the broker resource
//! id, but a member may not honour it (moto does not), so every create first searches for an
//! earlier attempt by its `alliance:broker-id` tag and returns it when found: a create
//! repeated after a crash, a timeout or a retry never makes a second resource. Buckets are
//! named after the broker id (`alliance-<id>`), so the name is the idempotency key; the
//! bucket also holds a marker object whose metadata carries the broker id and tenant (S3
//! implementations without bucket tagging, such as Swift's s3api, keep it too), and is
//! tagged where the member supports tagging.
//!
//! Layout: `config.rs` (the member config, building the adapter), `sign.rs` (SigV4),
//! `xml.rs` (answers and error codes), `transport.rs` (EC2 and S3 calls, tags),
//! `described.rs` (what instances and volumes share: `Describe*`, the guarded create, the
//! delete), `instances.rs`, `volumes.rs`, `buckets.rs` (S3) and `discovery.rs` (probes
//! for `alliance conformance` and health); this file holds the adapter, its kind and its
//! health check. The broker's calls reach each resource type's code through
//! `alliance_adapter_api::ByType`.
#![forbid(unsafe_code)]

mod buckets;
mod config;
mod described;
mod discovery;
mod instances;
mod sign;
mod transport;
mod usable;
mod volumes;
mod xml;

use alliance_adapter_api::{AdapterError, ByType, CallContext};
use alliance_adapter_http::{AmbiguousCreates, MemberHttp};
use alliance_core::ResourceType;

pub use buckets::BUCKET_MARKER;
pub use config::Ec2Config;
pub use sign::{Service, Signer};
pub use transport::{TAG_BROKER_ID, TAG_TENANT};

/// How broker names map to the member's, and what it offers (shared by the adapters).
pub use alliance_adapter_api::Mapping;

/// A member reached over the EC2 and S3 APIs.
pub struct Ec2Adapter {
    member: String,
    config: Ec2Config,
    ec2_url: String,
    s3_url: String,
    signer: Signer,
    mapping: Mapping,
    http: MemberHttp,
    ambiguous: AmbiguousCreates,
}

impl std::fmt::Debug for Ec2Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Adapter")
            .field("member", &self.member)
            .field("endpoint", &self.ec2_url)
            .field("region", &self.config.region)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ByType for Ec2Adapter {
    const KIND: &'static str = "ec2";

    /// Health: the EC2 API when instances or volumes are offered (or nothing is said), the
    /// S3 API when buckets are.
    async fn check_health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        let services = &self.mapping.services;
        if services.is_empty()
            || services.contains(&ResourceType::Instance)
            || services.contains(&ResourceType::Volume)
        {
            self.ec2_health(ctx).await?;
        }
        if services.contains(&ResourceType::Bucket) {
            self.s3_health(ctx).await?;
        }
        Ok(())
    }

    fn offers(&self) -> alliance_adapter_api::Capabilities {
        alliance_adapter_api::offered_for(&self.mapping.services)
    }

    async fn act_on_instance(
        &self,
        ctx: &CallContext,
        instance: &alliance_adapter_api::ResourceRef,
        action: &alliance_adapter_api::InstanceAction,
    ) -> Result<alliance_adapter_api::MemberResource, AdapterError> {
        self.act(ctx, instance, action).await
    }

    async fn attach_volume(
        &self,
        ctx: &CallContext,
        volume: &alliance_adapter_api::ResourceRef,
        instance: &alliance_adapter_api::ResourceRef,
    ) -> Result<alliance_adapter_api::MemberResource, AdapterError> {
        self.attachment(ctx, volume, Some(instance)).await
    }

    async fn detach_volume(
        &self,
        ctx: &CallContext,
        volume: &alliance_adapter_api::ResourceRef,
    ) -> Result<alliance_adapter_api::MemberResource, AdapterError> {
        self.attachment(ctx, volume, None).await
    }

    async fn sign_object_url(
        &self,
        ctx: &CallContext,
        bucket: &alliance_adapter_api::ResourceRef,
        request: &alliance_adapter_api::ObjectUrlRequest,
    ) -> Result<alliance_adapter_api::SignedUrl, AdapterError> {
        ctx.check_deadline()?;
        let name = match &bucket.member_resource_id {
            Some(name) => name.clone(),
            None => self.bucket_name_of(&bucket.broker_id)?,
        };
        self.presign(&name, request)
    }
}
