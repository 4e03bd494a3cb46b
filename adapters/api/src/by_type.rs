//! Adapters whose member keeps each resource type behind its own API (EC2 and S3; Nova,
//! Cinder and Swift): the adapter implements [`Serves`] once per type and [`ByType`], and
//! is a [`MemberAdapter`] by the one routing written here.
//!
//! Invariant: every routed call checks its deadline first, then goes to the [`Serves`] of
//! its resource type and to no other.

use alliance_core::{ResourceType, TenantId};

use crate::{
    unsupported, AdapterError, CallContext, Capabilities, InstanceAction, MemberAdapter,
    MemberResource, ObjectUrlRequest, ResourceRef, ResourceSpec, SignedUrl,
};

/// [`ResourceType::Instance`] as a type, for [`Serves`].
#[derive(Debug)]
pub enum Instances {}

/// [`ResourceType::Volume`] as a type, for [`Serves`].
#[derive(Debug)]
pub enum Volumes {}

/// [`ResourceType::Bucket`] as a type, for [`Serves`].
#[derive(Debug)]
pub enum Buckets {}

/// How an adapter serves one resource type `K` ([`Instances`], [`Volumes`] or [`Buckets`]);
/// each call keeps the contract of its [`MemberAdapter`] counterpart for that type.
#[async_trait::async_trait]
pub trait Serves<K>: Send + Sync {
    /// Creates a resource of this type, idempotently ([`MemberAdapter::create`]).
    async fn create_one(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError>;

    /// Reads one; `Ok(None)` when the member does not have it ([`MemberAdapter::get`]).
    async fn get_one(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError>;

    /// Deletes one; an unknown one is deleted ([`MemberAdapter::delete`]).
    async fn delete_one(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<(), AdapterError>;

    /// The broker's resources of this type, `tenant`'s when given ([`MemberAdapter::list`]).
    async fn list_all(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError>;
}

/// An adapter that serves every resource type ([`Serves`] each) and says its kind and
/// health; it is a [`MemberAdapter`] (see the impl below).
#[async_trait::async_trait]
pub trait ByType: Serves<Instances> + Serves<Volumes> + Serves<Buckets> + std::fmt::Debug {
    /// The adapter kind ([`MemberAdapter::kind`]).
    const KIND: &'static str;

    /// Checks that the member answers ([`MemberAdapter::health`]).
    async fn check_health(&self, ctx: &CallContext) -> Result<(), AdapterError>;

    /// What the member offers beyond create, read and delete ([`MemberAdapter::capabilities`]).
    fn offers(&self) -> Capabilities {
        Capabilities::new()
    }

    /// An action on an instance ([`MemberAdapter::act`]).
    async fn act_on_instance(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        let _ = (ctx, instance, action);
        Err(unsupported("instance actions"))
    }

    /// Attaches a volume ([`MemberAdapter::attach`]).
    async fn attach_volume(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        let _ = (ctx, volume, instance);
        Err(unsupported("volume attachment"))
    }

    /// Detaches a volume ([`MemberAdapter::detach`]).
    async fn detach_volume(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        let _ = (ctx, volume);
        Err(unsupported("volume attachment"))
    }

    /// A signed object URL ([`MemberAdapter::object_url`]).
    async fn sign_object_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &ObjectUrlRequest,
    ) -> Result<SignedUrl, AdapterError> {
        let _ = (ctx, bucket, request);
        Err(unsupported("object URLs"))
    }
}

/// Each call checks the deadline, then goes to the [`Serves`] of its resource type.
#[async_trait::async_trait]
impl<A: ByType> MemberAdapter for A {
    fn kind(&self) -> &'static str {
        A::KIND
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        match spec.resource_type {
            ResourceType::Instance => Serves::<Instances>::create_one(self, ctx, spec).await,
            ResourceType::Volume => Serves::<Volumes>::create_one(self, ctx, spec).await,
            ResourceType::Bucket => Serves::<Buckets>::create_one(self, ctx, spec).await,
        }
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => Serves::<Instances>::get_one(self, ctx, resource).await,
            ResourceType::Volume => Serves::<Volumes>::get_one(self, ctx, resource).await,
            ResourceType::Bucket => Serves::<Buckets>::get_one(self, ctx, resource).await,
        }
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => Serves::<Instances>::delete_one(self, ctx, resource).await,
            ResourceType::Volume => Serves::<Volumes>::delete_one(self, ctx, resource).await,
            ResourceType::Bucket => Serves::<Buckets>::delete_one(self, ctx, resource).await,
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
            ResourceType::Instance => Serves::<Instances>::list_all(self, ctx, tenant).await,
            ResourceType::Volume => Serves::<Volumes>::list_all(self, ctx, tenant).await,
            ResourceType::Bucket => Serves::<Buckets>::list_all(self, ctx, tenant).await,
        }
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        self.check_health(ctx).await
    }

    fn capabilities(&self) -> Capabilities {
        self.offers()
    }

    async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        self.act_on_instance(ctx, instance, action).await
    }

    async fn attach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        self.attach_volume(ctx, volume, instance).await
    }

    async fn detach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        self.detach_volume(ctx, volume).await
    }

    async fn object_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &ObjectUrlRequest,
    ) -> Result<SignedUrl, AdapterError> {
        ctx.check_deadline()?;
        self.sign_object_url(ctx, bucket, request).await
    }
}
