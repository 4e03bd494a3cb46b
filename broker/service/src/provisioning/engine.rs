//! The operations engine: claims due operations, runs one step of each against its member,
//! and commits the step's outcome.
//!
//! Each step is safe to repeat after a crash at any line: `create` is idempotent at the
//! member by the broker resource id (the idempotency key derived from the operation), the
//! member's answer is committed before the next step, and every commit is fenced by the
//! lease, so a broker that lost its lease cannot overwrite the work of the one that took
//! over. Waiting for a member (BUILD → ACTIVE) is a rescheduled `await` step with
//! exponential backoff, so no worker sits idle on a slow member.

use std::sync::Arc;
use std::time::Duration;

use alliance_adapter_api::{
    AdapterError, CallContext, MemberResource, MemberResourceStatus, ResourceRef, ResourceSpec,
};
use alliance_core::{OperationKind, ResourceStatus};
use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};

use crate::config::OperationsConfig;
use crate::error::{problem_document, ErrorCode};
use crate::members::MemberRegistry;
use crate::store::{
    AuditEntry, ClaimedOperation, Finish, OperationStep, ResourceUpdate, Store, StoreError,
};
use crate::time::SharedClock;

/// The engine of one broker process.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    members: Arc<MemberRegistry>,
    config: OperationsConfig,
    owner: String,
    wake: Arc<Notify>,
    clock: SharedClock,
}

/// What one step decided.
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived values, one per step, as `Finish` itself; boxing buys nothing"
)]
pub(super) enum Next {
    Finish(Finish, &'static str),
    Reschedule {
        step: OperationStep,
        delay: Duration,
        error: Option<String>,
        member_resource_id: Option<String>,
    },
}

impl Engine {
    /// An engine with a fresh owner id for its leases.
    pub fn new(
        store: Store,
        members: Arc<MemberRegistry>,
        config: OperationsConfig,
        wake: Arc<Notify>,
        clock: SharedClock,
    ) -> Self {
        let owner = format!("broker-{}", uuid::Uuid::new_v4().simple());
        Self {
            store,
            members,
            config,
            owner,
            wake,
            clock,
        }
    }

    /// The engine of a broker's state (its store, members, config, wake-up and clock).
    pub fn for_state(state: &crate::state::AppState) -> Self {
        Self::new(
            state.store.clone(),
            state.members.clone(),
            state.config.operations.clone(),
            state.wake.clone(),
            state.clock.clone(),
        )
    }

    /// Runs until `shutdown` turns true, then waits for the steps in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(1));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = permits.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                let lease = i64::try_from(self.config.lease_ms).unwrap_or(60_000);
                match self
                    .store
                    .claim_operations(
                        &self.owner,
                        self.clock.now_ms(),
                        lease,
                        i64::try_from(free.min(64)).unwrap_or(64),
                    )
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim operations");
                        Vec::new()
                    }
                }
            };
            let idle = claimed.is_empty();
            for op in claimed {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let engine = self.clone();
                tokio::spawn(async move {
                    engine.step(op).await;
                    drop(permit);
                });
            }
            if idle {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        // Drain: wait until every spawned step has returned its permit.
        let all = u32::try_from(self.config.concurrency.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(30), permits.acquire_many(all)).await;
    }

    /// The store the engine commits to.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn backoff(attempts: i64, retry_after: Option<Duration>) -> Duration {
        let exp = u32::try_from(attempts.clamp(0, 6)).unwrap_or(6);
        let base = Duration::from_millis(100 * 2u64.pow(exp)).min(Duration::from_secs(5));
        let jitter = rand::rng().random_range(0.8..1.2);
        base.mul_f64(jitter).max(retry_after.unwrap_or_default())
    }

    async fn step(&self, claimed: ClaimedOperation) {
        use tracing::Instrument;
        let op = &claimed.operation;
        let span = tracing::info_span!("operation.step", operation.id = %op.id, kind = %op.kind, member.id = %claimed.resource.member_id, tenant.id = %op.tenant_id);
        crate::telemetry::continue_trace(&span, claimed.traceparent.as_deref());
        self.step_in_span(&claimed).instrument(span).await;
    }

    async fn step_in_span(&self, claimed: &ClaimedOperation) {
        let claimed = claimed.clone();
        let op = &claimed.operation;
        let next = self.decide(&claimed).await;
        let now = self.clock.now_ms();
        let result = match next {
            Next::Reschedule {
                step,
                delay,
                error,
                member_resource_id,
            } => {
                let next_at = now + i64::try_from(delay.as_millis()).unwrap_or(5_000);
                if next_at > claimed.deadline_at {
                    let problem = problem(
                        ErrorCode::MemberTimeout,
                        format!(
                            "the operation did not finish before its deadline{}",
                            error.map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                    );
                    self.finish(&claimed, failure(op.kind, problem), "failed")
                        .await
                } else {
                    self.store
                        .reschedule_operation(
                            &op.id,
                            &self.owner,
                            step,
                            op.attempts + 1,
                            next_at,
                            error.as_deref(),
                            member_resource_id.as_deref(),
                            now,
                        )
                        .await
                }
            }
            Next::Finish(finish, outcome) => self.finish(&claimed, finish, outcome).await,
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("lost the lease on the operation; another broker took it over")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot commit the operation step; it will be retried when its lease expires")
            }
        }
    }

    async fn finish(
        &self,
        claimed: &ClaimedOperation,
        finish: Finish,
        outcome: &'static str,
    ) -> Result<bool, StoreError> {
        let op = &claimed.operation;
        let mut details =
            serde_json::json!({ "operation": op.id, "member": claimed.resource.member_id });
        if let Finish::Failed(problem) | Finish::Refused(problem) = &finish {
            details["error"] = problem.clone();
        }
        let entry = AuditEntry::system(
            "system:engine",
            Some(op.tenant_id.to_string()),
            format!("{}.{}", op.resource_type, op.kind),
            Some(op.resource_id.clone()),
            outcome,
            details,
        );
        let done = self
            .store
            .finish_operation(&op.id, &self.owner, &finish, &[entry], self.clock.now_ms())
            .await?;
        if done {
            metrics::counter!("alliance_operations_total", "kind" => op.kind.as_str(), "outcome" => outcome).increment(1);
            tracing::info!(outcome, "operation finished");
        }
        Ok(done)
    }

    async fn decide(&self, claimed: &ClaimedOperation) -> Next {
        let op = &claimed.operation;
        let resource = &claimed.resource;
        let Some(member) = self.members.get(resource.member_id.as_str()) else {
            // Not (yet) in this replica's table: a member approved on another replica
            // appears within a refresh. Retry until the operation's deadline.
            return Next::Reschedule {
                step: op.step,
                delay: Self::backoff(op.attempts, Some(Duration::from_secs(1))),
                error: Some(format!(
                    "member {} is not known to this broker (yet)",
                    resource.member_id
                )),
                member_resource_id: None,
            };
        };
        let mut ctx = CallContext::new(
            Some(resource.tenant_id.clone()),
            op.id.clone(),
            Duration::from_millis(self.config.call_timeout_ms),
        );
        ctx.traceparent = Some(crate::telemetry::outgoing_traceparent(
            claimed.traceparent.as_deref(),
        ));
        let reference = ResourceRef {
            resource_type: resource.resource_type,
            broker_id: resource.id.clone(),
            member_resource_id: resource.member_resource_id.clone(),
        };
        let adapter = &member.adapter;
        // Member call metrics are counted by the resilience layer; this only marks the step.
        let call = |name: &'static str, outcome: &'static str| {
            tracing::debug!(call = name, outcome, "member call");
        };
        match (op.kind, op.step) {
            (
                OperationKind::Attach | OperationKind::Detach,
                OperationStep::Submit | OperationStep::Await,
            ) => {
                self.attachment_step(claimed, adapter.as_ref(), &ctx, &reference)
                    .await
            }
            (kind, OperationStep::Submit | OperationStep::Await) if kind.is_change() => {
                self.action_step(claimed, adapter.as_ref(), &ctx, &reference)
                    .await
            }
            (OperationKind::Create, OperationStep::Submit) => {
                let spec = spec_of(resource);
                match adapter.create(&ctx, &spec).await {
                    Ok(found) => {
                        crash_point("after-member-create");
                        call("create", "ok");
                        self.after_create_answer(claimed, adapter.as_ref(), &ctx, found)
                            .await
                    }
                    Err(e) => {
                        call("create", "error");
                        self.on_error(op.kind, op.attempts, OperationStep::Submit, e)
                    }
                }
            }
            (OperationKind::Create, OperationStep::Await) => {
                match adapter.get(&ctx, &reference).await {
                    Ok(Some(found)) => {
                        call("get", "ok");
                        self.after_create_answer(claimed, adapter.as_ref(), &ctx, found)
                            .await
                    }
                    // The member lost it (or never committed it): ask again, idempotently.
                    Ok(None) => Next::Reschedule {
                        step: OperationStep::Submit,
                        delay: Self::backoff(op.attempts, None),
                        error: Some("the member does not know the resource yet".into()),
                        member_resource_id: None,
                    },
                    Err(e) => {
                        call("get", "error");
                        self.on_error(op.kind, op.attempts, OperationStep::Await, e)
                    }
                }
            }
            (OperationKind::Delete, OperationStep::Submit) => {
                match adapter.delete(&ctx, &reference).await {
                    Ok(()) => {
                        call("delete", "ok");
                        Next::Reschedule {
                            step: OperationStep::Await,
                            delay: Duration::ZERO,
                            error: None,
                            member_resource_id: None,
                        }
                    }
                    Err(e) => {
                        call("delete", "error");
                        self.on_error(op.kind, op.attempts, OperationStep::Submit, e)
                    }
                }
            }
            (OperationKind::Delete, OperationStep::Await) => {
                match adapter.get(&ctx, &reference).await {
                    Ok(None) => Next::Finish(
                        Finish::Succeeded {
                            resource_status: ResourceStatus::Deleted,
                            member_resource_id: None,
                            update: ResourceUpdate::default(),
                        },
                        "succeeded",
                    ),
                    Ok(Some(_)) => Next::Reschedule {
                        step: OperationStep::Await,
                        delay: Self::backoff(op.attempts, None),
                        error: None,
                        member_resource_id: None,
                    },
                    Err(e) => self.on_error(op.kind, op.attempts, OperationStep::Await, e),
                }
            }
            (kind, step) => Next::Finish(
                Finish::Failed(problem(
                    ErrorCode::Internal,
                    format!("operation kind {kind} at step {step:?} cannot run"),
                )),
                "failed",
            ),
        }
    }

    /// A create's end: the resource active with what the member reports, attached to
    /// its instance first when it was asked for with `attach_to`.
    pub(super) fn created(&self, found: &MemberResource, attached_to: Option<String>) -> Next {
        Next::Finish(
            Finish::Succeeded {
                resource_status: ResourceStatus::Active,
                member_resource_id: Some(found.member_resource_id.clone()),
                update: ResourceUpdate {
                    observed: Some(found.observed.clone()),
                    reshaped: None,
                    attached_to: attached_to.map(Some),
                },
            },
            "succeeded",
        )
    }

    async fn after_create_answer(
        &self,
        claimed: &ClaimedOperation,
        adapter: &dyn alliance_adapter_api::MemberAdapter,
        ctx: &CallContext,
        found: MemberResource,
    ) -> Next {
        let attempts = claimed.operation.attempts;
        match found.status {
            MemberResourceStatus::Active => {
                match self.attach_created(claimed, adapter, ctx, &found).await {
                    Some(next) => next,
                    None => self.created(&found, None),
                }
            }
            MemberResourceStatus::Provisioning => Next::Reschedule {
                step: OperationStep::Await,
                delay: Self::backoff(attempts, None),
                error: None,
                member_resource_id: Some(found.member_resource_id),
            },
            MemberResourceStatus::Error => Next::Finish(
                Finish::Failed(problem(
                    ErrorCode::MemberResourceFailed,
                    found
                        .detail
                        .unwrap_or_else(|| "the member failed to create the resource".into()),
                )),
                "failed",
            ),
            MemberResourceStatus::Deleting => Next::Finish(
                Finish::Failed(problem(
                    ErrorCode::MemberResourceFailed,
                    "the member is deleting the resource",
                )),
                "failed",
            ),
        }
    }

    pub(super) fn on_error(
        &self,
        kind: OperationKind,
        attempts: i64,
        step: OperationStep,
        error: AdapterError,
    ) -> Next {
        tracing::warn!(error = %error, "member call failed");
        if error.is_transient() {
            Next::Reschedule {
                step,
                delay: Self::backoff(attempts, error.retry_after),
                error: Some(error.message),
                member_resource_id: None,
            }
        } else {
            let code = match error.kind {
                alliance_adapter_api::ErrorKind::OverQuota => ErrorCode::MemberOverQuota,
                alliance_adapter_api::ErrorKind::AuthFailed => ErrorCode::MemberAuthFailed,
                alliance_adapter_api::ErrorKind::Invalid
                    if error.origin == alliance_adapter_api::ErrorSource::Broker =>
                {
                    ErrorCode::MemberUnsupported
                }
                alliance_adapter_api::ErrorKind::Invalid => ErrorCode::MemberRejected,
                _ => ErrorCode::MemberError,
            };
            Next::Finish(failure(kind, problem(code, error.message)), "failed")
        }
    }
}

/// A test-only crash point: with `ALLIANCE_FAILPOINT=<name>` the process aborts when it
/// reaches the point, as a `kill -9` at that line would (no flush, no commit, no cleanup).
/// `after-member-create` sits between a member's answer to a create and the broker's
/// commit of it. Read once; never set in production (docs/testing.md).
pub(super) fn crash_point(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let armed = POINT.get_or_init(|| std::env::var("ALLIANCE_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("alliance: failpoint {name} reached: aborting");
        std::process::abort();
    }
}

/// How an operation of `kind` fails: a create or delete leaves its resource `failed`, a
/// change leaves it as it was.
fn failure(kind: OperationKind, problem: serde_json::Value) -> Finish {
    if kind.is_change() {
        Finish::Refused(problem)
    } else {
        Finish::Failed(problem)
    }
}

/// A problem document stored on a failed operation, written by the one renderer.
pub fn problem(code: ErrorCode, detail: impl Into<String>) -> serde_json::Value {
    let detail: String = detail.into();
    serde_json::to_value(problem_document(code, &detail, serde_json::Map::new()))
        .unwrap_or_default()
}

/// What the member is asked to create: the row as it was validated at the edge and placed
/// (placement chose a member that offers the size), nothing parsed back.
fn spec_of(resource: &crate::store::ResourceRow) -> ResourceSpec {
    ResourceSpec {
        broker_id: resource.id.clone(),
        resource_type: resource.resource_type,
        name: resource.name.clone(),
        tenant: resource.tenant_id.clone(),
        jurisdiction: resource.jurisdiction,
        data_class: resource.data_class.clone(),
        size: resource.shape.size.clone(),
        image: resource.shape.image.clone(),
        size_gb: resource.shape.size_gb,
        access: access_of(resource),
    }
}

/// How the tenant reaches an instance: its key (under a member name scoped to the tenant),
/// user data, ingress and public address, as the row holds them.
fn access_of(resource: &crate::store::ResourceRow) -> Option<alliance_adapter_api::InstanceAccess> {
    let s = &resource.settings;
    if resource.resource_type != alliance_core::ResourceType::Instance {
        return None;
    }
    let ssh_key = s
        .ssh_key
        .as_ref()
        .zip(s.ssh_public_key.as_ref())
        .map(|(name, key)| alliance_adapter_api::SshKey {
            member_name: crate::ssh_keys::member_key_name(&resource.tenant_id, name),
            public_key: key.clone(),
        });
    let access = alliance_adapter_api::InstanceAccess {
        ssh_key,
        user_data: s.user_data.clone(),
        ingress: s.ingress.clone(),
        public_ip: s.public_ip,
    };
    // Nothing asked for: members of protocol 1.0 never see the field.
    (access != alliance_adapter_api::InstanceAccess::default()).then_some(access)
}
