//! The broker's adapter for OpenStack member clouds.
//!
//! Keystone v3 (password or application credentials from the standard `OS_*` variables; the
//! token cached until shortly before expiry and renewed once on a 401), endpoints from the
//! service catalogue by region and interface; Nova servers (flavour, image, network,
//! compute microversion 2.52 for server tags), Cinder v3 volumes, Swift containers.
//!
//! Idempotency. A Nova server carries the tag `alliance:<broker id>` and metadata with the
//! broker id and tenant; a Cinder volume carries that metadata; every create first searches
//! for an earlier attempt by it (Nova's `tags` filter, Cinder's `metadata` filter) and
//! returns it, so a create repeated after a crash or a timeout never makes a second one.
//! Swift containers are named after the broker id (`alliance-<id>`): PUT is idempotent.
//!
//! Layout: `config.rs` (the member config, building the adapter), `keystone.rs` (tokens
//! and the catalogue), `transport.rs` (calls, errors, pages, what Nova and Cinder share),
//! `instances.rs` (Nova), `volumes.rs` (Cinder), `buckets.rs` (Swift) and `discovery.rs`
//! (`discover`, for `alliance conformance`); this file holds the adapter and dispatches.
#![forbid(unsafe_code)]

mod buckets;
mod config;
mod discovery;
mod instances;
mod keystone;
#[cfg(test)]
mod tests;
mod transport;
mod volumes;

use alliance_adapter_api::{
    AdapterError, CallContext, MemberAdapter, MemberResource, ResourceRef, ResourceSpec,
};
use alliance_adapter_http::{AmbiguousCreates, MemberHttp};
use alliance_core::{ResourceType, TenantId};

pub use config::OpenStackConfig;
pub use discovery::{discover, Discovered, Overrides};
pub use instances::{COMPUTE_MICROVERSION, TAG_MARKER};
pub use keystone::{Credentials, Keystone, Session};
pub use transport::{META_BROKER_ID, META_TENANT};
pub use volumes::VOLUME_MICROVERSION;

/// How broker names map to the member's, and what it offers (shared by the adapters).
pub use alliance_adapter_api::Mapping;

/// A member reached over the OpenStack APIs.
pub struct OpenStackAdapter {
    member: String,
    config: OpenStackConfig,
    keystone: Keystone,
    mapping: Mapping,
    http: MemberHttp,
    page_size: usize,
    ambiguous: AmbiguousCreates,
}

impl std::fmt::Debug for OpenStackAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStackAdapter")
            .field("member", &self.member)
            .field("keystone", &self.keystone)
            .field("region", &self.config.region)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl MemberAdapter for OpenStackAdapter {
    fn kind(&self) -> &'static str {
        "openstack"
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        match spec.resource_type {
            ResourceType::Instance => self.create_server(ctx, spec).await,
            ResourceType::Volume => self.create_volume(ctx, spec).await,
            ResourceType::Bucket => self.create_container(ctx, spec).await,
        }
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => self.get_server(ctx, resource).await,
            ResourceType::Volume => self.get_volume(ctx, resource).await,
            ResourceType::Bucket => self.get_container(ctx, resource).await,
        }
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => self.delete_server(ctx, resource).await,
            ResourceType::Volume => self.delete_volume(ctx, resource).await,
            ResourceType::Bucket => self.delete_container(ctx, resource).await,
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
            ResourceType::Instance => self.list_servers(ctx, tenant).await,
            ResourceType::Volume => self.list_volumes(ctx, tenant).await,
            ResourceType::Bucket => self.list_containers(ctx, tenant).await,
        }
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        self.check_health(ctx).await
    }
}
