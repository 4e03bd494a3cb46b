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
//! and the catalogue), `transport.rs` (calls, errors, pages), `kept.rs` (what Nova servers
//! and Cinder volumes share), `instances.rs` (Nova), `volumes.rs` (Cinder) and `buckets.rs`
//! (Swift), each serving its resource type, and `discovery.rs` (`discover`, for `alliance
//! conformance`); this file holds the adapter, its kind and its health check. The broker's
//! calls reach each type's code through `alliance_adapter_api::ByType`.
#![forbid(unsafe_code)]

mod buckets;
mod config;
mod discovery;
mod floating;
mod groups;
mod instances;
mod kept;
mod keystone;
mod projects;
#[cfg(test)]
mod tests;
mod transport;
mod usable;
mod volumes;

use alliance_adapter_api::{AdapterError, ByType, CallContext};
use alliance_adapter_http::{AmbiguousCreates, MemberHttp};

use crate::transport::service_types;

pub use config::OpenStackConfig;
pub use discovery::{discover, Discovered, Overrides};
pub use instances::{COMPUTE_MICROVERSION, TAG_MARKER};
pub use keystone::{Credentials, Domain, Keystone, Project, Scope, Session};
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
    /// Set for members that joined by application: every catalogue endpoint must lie in
    /// these destinations.
    allowed: Option<alliance_adapter_http::AllowedDestinations>,
    /// Tenant id → its project's id at the member (with `tenant_project_domain`).
    projects: moka::future::Cache<String, String>,
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
impl ByType for OpenStackAdapter {
    const KIND: &'static str = "openstack";

    /// Health: authenticating proves Keystone and the credentials; each offered service
    /// must be in the catalogue for the configured region and interface.
    async fn check_health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        for service in &self.mapping.services {
            self.endpoint(ctx, service_types(*service)).await?;
        }
        self.keystone.session(&self.http, ctx).await.map(|_| ())
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
        self.temp_url(ctx, bucket, request).await
    }
}
