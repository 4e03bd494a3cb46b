//! The one trait every member cloud is driven through, and its vocabulary.
//!
//! `MemberAdapter` is object safe and held as `Arc<dyn MemberAdapter>`. Each call takes a
//! [`CallContext`] (tenant, idempotency key, deadline, trace context). Errors are classified
//! once, where they happen: what kind of failure, where it came from, and whether a retry is
//! safe; retry and breaker layers read those fields, never message strings.
//!
//! Invariant: `create` is idempotent by `ResourceSpec::broker_id`; an adapter that talks to
//! a member API without native idempotency makes the call idempotent itself (a client token,
//! or a tag searched before any retry) before it ever retries.
//!
//! `by_type.rs` routes the calls of an adapter whose member keeps each resource type behind
//! its own API ([`ByType`], [`Serves`]) to that type's calls, once for every such adapter.
#![forbid(unsafe_code)]

mod access;
mod by_type;

pub use access::{
    encode_object_key, offered_for, unsupported, Addresses, Capabilities, Capability, IngressRule,
    InstanceAccess, InstanceAction, ObjectMethod, ObjectUrlRequest, Observed, PowerState, Protocol,
    SignedUrl, SshKey, UserData, MAX_URL_VALIDITY,
};
pub use by_type::{Buckets, ByType, Instances, Serves, Volumes};

use std::fmt;
use std::time::Duration;

use alliance_core::{DataClassName, ImageName, Jurisdiction, ResourceType, SizeName, TenantId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What every adapter call carries.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The tenant on whose behalf the call is made, when there is one.
    pub tenant: Option<TenantId>,
    /// A key that makes a repeated call safe; derived from the broker's operation.
    pub idempotency_key: String,
    /// When the caller stops waiting.
    pub deadline: Instant,
    /// The W3C `traceparent` of the calling span, propagated to the member.
    pub traceparent: Option<String>,
}

impl CallContext {
    /// A context with a deadline `timeout` from now.
    pub fn new(
        tenant: Option<TenantId>,
        idempotency_key: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            tenant,
            idempotency_key: idempotency_key.into(),
            deadline: Instant::now() + timeout,
            traceparent: None,
        }
    }

    /// Fails as a timeout when the deadline has passed: adapters call it before any work.
    pub fn check_deadline(&self) -> Result<(), AdapterError> {
        if self.remaining().is_zero() {
            Err(AdapterError::new(
                ErrorKind::Timeout,
                ErrorSource::Broker,
                Retry::WithIdempotencyKey,
                "the call's deadline passed before it ran",
            ))
        } else {
            Ok(())
        }
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What the broker asks a member to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// The broker's id for the resource; the member keeps it (tag, metadata or path).
    pub broker_id: String,
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The tenant's name for it.
    pub name: String,
    /// The owning tenant.
    pub tenant: TenantId,
    /// The jurisdiction it must live in.
    pub jurisdiction: Jurisdiction,
    /// The data class.
    pub data_class: DataClassName,
    /// Instances: the broker-wide size.
    pub size: Option<SizeName>,
    /// Instances: the broker-wide image.
    pub image: Option<ImageName>,
    /// Volumes: the size in GB.
    pub size_gb: Option<u32>,
    /// Instances: how the tenant reaches it (key, user data, ingress, public address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<InstanceAccess>,
}

impl ResourceSpec {
    /// The size in GB a volume is created with; its absence is the broker's own error.
    pub fn volume_size_gb(&self) -> Result<u32, AdapterError> {
        self.size_gb
            .ok_or_else(|| refused("a volume needs size_gb".to_owned()))
    }

    /// What the tenant chose, as the books meter it.
    pub fn shape(&self) -> alliance_core::ResourceShape {
        alliance_core::ResourceShape {
            size: self.size.clone(),
            image: self.image.clone(),
            size_gb: self.size_gb,
        }
    }
}

/// How the broker names a resource at a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The broker's id.
    pub broker_id: String,
    /// The member's own id, once known.
    pub member_resource_id: Option<String>,
}

/// The state of a resource at its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberResourceStatus {
    /// Being created.
    Provisioning,
    /// Ready.
    Active,
    /// Being deleted.
    Deleting,
    /// Creation failed at the member.
    Error,
}

/// A resource as a member reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberResource {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The member's own id.
    pub member_resource_id: String,
    /// The broker's id, when the member keeps it.
    pub broker_id: Option<String>,
    /// The owning tenant, when the member keeps it.
    pub tenant: Option<TenantId>,
    /// The state.
    pub status: MemberResourceStatus,
    /// A member-side explanation, e.g. of an error.
    pub detail: Option<String>,
    /// What else the member reports (addresses, power state, attachment, endpoint).
    #[serde(default, skip_serializing_if = "Observed::is_empty")]
    pub observed: Observed,
}

impl MemberResource {
    /// A bucket, as members report one: active once it exists.
    pub fn bucket(
        member_resource_id: String,
        broker_id: Option<String>,
        tenant: Option<TenantId>,
    ) -> Self {
        Self {
            resource_type: ResourceType::Bucket,
            member_resource_id,
            broker_id,
            tenant,
            status: MemberResourceStatus::Active,
            detail: None,
            observed: Observed::default(),
        }
    }

    /// Whether a volume found before its delete is still to be deleted: not when it is
    /// being deleted already; while it is still being created members refuse to delete
    /// it, so that is a transient error, retried once the volume is available.
    pub fn volume_needs_delete(&self) -> Result<bool, AdapterError> {
        match self.status {
            MemberResourceStatus::Deleting => Ok(false),
            MemberResourceStatus::Provisioning => Err(AdapterError::unavailable(
                "the volume is still being created; it is deleted once it is available",
            )
            .with_retry_after(Duration::from_secs(2))),
            MemberResourceStatus::Active | MemberResourceStatus::Error => Ok(true),
        }
    }
}

/// The broker's closed set of failure kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The member does not know the resource.
    NotFound,
    /// The member refuses for lack of quota.
    OverQuota,
    /// The member asks the broker to slow down.
    RateLimited,
    /// The member refuses the broker's credentials.
    AuthFailed,
    /// The member is down, overloaded or unreachable.
    Unavailable,
    /// The call did not finish before its deadline.
    Timeout,
    /// The member refuses the request as invalid.
    Invalid,
    /// The member's answer was not what the protocol says.
    BadResponse,
}

/// Where a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorSource {
    /// The member answered with an error.
    Member,
    /// The network failed between broker and member.
    Network,
    /// The broker itself (configuration, mapping).
    Broker,
}

/// Whether a failed call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Repeating is always safe (reads, idempotent deletes).
    Safe,
    /// Repeating is safe with the same idempotency key.
    WithIdempotencyKey,
    /// Repeating will not help.
    Never,
}

/// A failed adapter call, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AdapterError {
    /// What failed.
    pub kind: ErrorKind,
    /// Where.
    pub origin: ErrorSource,
    /// Whether to retry.
    pub retry: Retry,
    /// How long the member asked to wait.
    pub retry_after: Option<Duration>,
    /// A human explanation without secrets.
    pub message: String,
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} from {:?}: {}",
            self.kind, self.origin, self.message
        )
    }
}

impl AdapterError {
    /// A new error.
    pub fn new(
        kind: ErrorKind,
        origin: ErrorSource,
        retry: Retry,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            origin,
            retry,
            retry_after: None,
            message: message.into(),
        }
    }

    /// The member's refusal, as the adapter classified its answer (`kind`, `retry`), with
    /// the wait the member asked for.
    pub fn from_member(
        kind: ErrorKind,
        retry: Retry,
        retry_after: Option<Duration>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            retry_after,
            ..Self::new(kind, ErrorSource::Member, retry, message)
        }
    }

    /// The member is unavailable; retrying with the same key is safe.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Unavailable,
            ErrorSource::Member,
            Retry::WithIdempotencyKey,
            message,
        )
    }

    /// The member refuses the request; do not retry.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Invalid,
            ErrorSource::Member,
            Retry::Never,
            message,
        )
    }

    /// Sets `retry_after`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Whether a later attempt of the same call, with the same key, may succeed.
    pub fn is_transient(&self) -> bool {
        self.retry != Retry::Never
            && matches!(
                self.kind,
                ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Timeout
            )
    }
}

/// How broker sizes and images map to a member's own (instance types or flavour ids, AMIs
/// or image ids), and which services it offers (health checks only those APIs).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Broker size → the member's instance type or flavour.
    pub sizes: std::collections::BTreeMap<String, String>,
    /// Broker image → the member's image id.
    pub images: std::collections::BTreeMap<String, String>,
    /// The services the member offers.
    pub services: std::collections::BTreeSet<ResourceType>,
}

impl Mapping {
    /// The member's own instance type or flavour for the size of `spec`.
    pub fn size(&self, spec: &ResourceSpec) -> Result<String, AdapterError> {
        member_name(&self.sizes, spec.size.as_ref().map(|s| s.as_str()), "size")
    }

    /// The member's own image id for the image of `spec`.
    pub fn image(&self, spec: &ResourceSpec) -> Result<String, AdapterError> {
        member_name(
            &self.images,
            spec.image.as_ref().map(|i| i.as_str()),
            "image",
        )
    }
}

/// The broker refuses a call it cannot make as asked (a missing field or mapping).
fn refused(message: String) -> AdapterError {
    AdapterError::new(
        ErrorKind::Invalid,
        ErrorSource::Broker,
        Retry::Never,
        message,
    )
}

/// The member's own name for a broker size or image (`what` is `size` or `image`), from the
/// mapping in the member config; a missing name or mapping is the broker's own error.
fn member_name(
    map: &std::collections::BTreeMap<String, String>,
    name: Option<&str>,
    what: &str,
) -> Result<String, AdapterError> {
    let name = name.ok_or_else(|| refused(format!("an instance needs a {what}")))?;
    map.get(name).cloned().ok_or_else(|| {
        refused(format!(
            "the member maps no {what} `{name}` (member config `{what}s`)"
        ))
    })
}

/// One member cloud, as the broker drives it.
#[async_trait::async_trait]
pub trait MemberAdapter: Send + Sync + fmt::Debug {
    /// The adapter kind (`sim`, `federation`, `openstack`, `ec2`).
    fn kind(&self) -> &'static str;

    /// Creates a resource, idempotently by `spec.broker_id`: a second call returns the
    /// resource of the first.
    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError>;

    /// Reads a resource; `Ok(None)` when the member does not have it.
    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError>;

    /// Deletes a resource; deleting an unknown resource succeeds.
    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError>;

    /// Lists the member's resources of a type, for one tenant or all.
    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError>;

    /// Checks that the member answers.
    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError>;

    /// The member's own usage statement for a period (`YYYY-MM`) as FOCUS CSV; `Ok(None)`
    /// when the member publishes none (statements are then uploaded).
    async fn statement(
        &self,
        ctx: &CallContext,
        period: &str,
    ) -> Result<Option<String>, AdapterError> {
        let _ = (ctx, period);
        Ok(None)
    }

    /// The health the adapter observed from its recent calls (a circuit breaker's view),
    /// when it keeps one.
    fn observed_health(&self) -> Option<alliance_core::MemberHealth> {
        None
    }

    /// Its circuit breaker's state (`closed`, `open`, `half-open`), when it keeps one.
    fn breaker_state(&self) -> Option<&'static str> {
        None
    }

    /// What the member offers beyond create, read and delete.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    /// Runs an action on an instance and answers the instance as it is after the member
    /// accepted it (the change may still be under way: poll `get`). Repeating the same call
    /// with the same idempotency key has one effect: starting a running instance, stopping
    /// a stopped one or resizing to the size it has succeeds without a change.
    async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        let _ = (ctx, instance, action);
        Err(unsupported("instance actions"))
    }

    /// Attaches a volume to an instance of the same member, and answers the volume.
    /// Attaching it again to the same instance succeeds without a change.
    async fn attach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        let _ = (ctx, volume, instance);
        Err(unsupported("volume attachment"))
    }

    /// Detaches a volume, and answers it; detaching a detached volume succeeds.
    async fn detach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        let _ = (ctx, volume);
        Err(unsupported("volume attachment"))
    }

    /// A signed, time-limited URL at the member for one object of a bucket.
    async fn object_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &ObjectUrlRequest,
    ) -> Result<SignedUrl, AdapterError> {
        let _ = (ctx, bucket, request);
        Err(unsupported("object URLs"))
    }
}
