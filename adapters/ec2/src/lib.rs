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
//! `xml.rs` (answers and error codes), `transport.rs` (EC2 and S3 calls, tags, the shared
//! `Describe*` listings), `instances.rs`, `volumes.rs`, `buckets.rs` (S3) and
//! `discovery.rs` (probes for `alliance conformance` and health); this file holds the
//! adapter and dispatches.
#![forbid(unsafe_code)]

mod buckets;
mod config;
mod discovery;
mod instances;
mod sign;
mod transport;
mod volumes;
mod xml;

use alliance_adapter_api::{
    AdapterError, CallContext, MemberAdapter, MemberResource, ResourceRef, ResourceSpec,
};
use alliance_adapter_http::{AmbiguousCreates, MemberHttp};
use alliance_core::{ResourceType, TenantId};

use crate::transport::Described;

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
impl MemberAdapter for Ec2Adapter {
    fn kind(&self) -> &'static str {
        "ec2"
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        match spec.resource_type {
            ResourceType::Instance => self.create_instance(ctx, spec).await,
            ResourceType::Volume => self.create_volume(ctx, spec).await,
            ResourceType::Bucket => self.create_bucket(ctx, spec).await,
        }
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => {
                self.get_described(ctx, Described::Instances, resource)
                    .await
            }
            ResourceType::Volume => self.get_described(ctx, Described::Volumes, resource).await,
            ResourceType::Bucket => self.get_bucket(ctx, resource).await,
        }
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => self.delete_instance(ctx, resource).await,
            ResourceType::Volume => self.delete_volume(ctx, resource).await,
            ResourceType::Bucket => self.delete_bucket(ctx, resource).await,
        }
    }

    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource_type {
            ResourceType::Instance => self.list_described(ctx, Described::Instances, tenant).await,
            ResourceType::Volume => self.list_described(ctx, Described::Volumes, tenant).await,
            ResourceType::Bucket => self.list_buckets(ctx, tenant).await,
        }
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        self.check_health(ctx).await
    }
}
