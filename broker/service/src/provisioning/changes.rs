//! The engine's steps for changes to live resources: actions on instances (start, stop,
//! reboot, resize) and volume attachments, and the attachment a volume created with
//! `attach_to` gets once it is active.
//!
//! Each step is safe to repeat after a crash: the member call carries the operation's id
//! as its idempotency key (an action is applied once per key; attaching to the same
//! instance again is no change), and the outcome is committed fenced by the lease. A step
//! submits, then awaits until the member shows the change settled (power state, size,
//! attachment). A change that fails leaves the resource `active`, as it was.

use std::time::Duration;

use alliance_adapter_api::{
    CallContext, InstanceAction, MemberAdapter, MemberResource, Observed, PowerState, ResourceRef,
};
use alliance_core::{OperationKind, ResourceStatus, ResourceType};

use super::engine::{crash_point, problem, Engine, Next};
use crate::error::ErrorCode;
use crate::store::{
    ClaimedOperation, Finish, OperationStep, ResourceRow, ResourceUpdate, TenantScope,
};

/// The action an operation of `kind` runs, with its arguments.
fn action_of(claimed: &ClaimedOperation) -> Option<InstanceAction> {
    let op = &claimed.operation;
    match op.kind {
        OperationKind::Start => Some(InstanceAction::Start),
        OperationKind::Stop => Some(InstanceAction::Stop),
        OperationKind::Reboot => Some(InstanceAction::Reboot),
        OperationKind::Resize => op
            .params
            .size
            .clone()
            .map(|size| InstanceAction::Resize { size }),
        _ => None,
    }
}

/// Whether the member shows the action done.
fn settled(action: &InstanceAction, observed: &Observed) -> bool {
    match action {
        InstanceAction::Start | InstanceAction::Reboot => {
            observed.power_state == Some(PowerState::Running)
        }
        InstanceAction::Stop => observed.power_state == Some(PowerState::Stopped),
        // A member that does not report the size is settled once the power state is.
        InstanceAction::Resize { size } => match &observed.size {
            Some(now) => now == size && observed.power_state != Some(PowerState::Unknown),
            None => observed.power_state != Some(PowerState::Unknown),
        },
    }
}

fn succeeded(update: ResourceUpdate) -> Next {
    Next::Finish(
        Finish::Succeeded {
            resource_status: ResourceStatus::Active,
            member_resource_id: None,
            update,
        },
        "succeeded",
    )
}

fn refused(code: ErrorCode, detail: impl Into<String>) -> Next {
    Next::Finish(Finish::Refused(problem(code, detail)), "failed")
}

fn awaiting(attempts: i64) -> Next {
    Next::Reschedule {
        step: OperationStep::Await,
        delay: Engine::backoff(attempts, None),
        error: None,
        member_resource_id: None,
    }
}

impl Engine {
    /// One step of an action on an instance.
    pub(super) async fn action_step(
        &self,
        claimed: &ClaimedOperation,
        adapter: &dyn MemberAdapter,
        ctx: &CallContext,
        reference: &ResourceRef,
    ) -> Next {
        let op = &claimed.operation;
        let Some(action) = action_of(claimed) else {
            return refused(
                ErrorCode::Internal,
                "the operation has no size to resize to",
            );
        };
        let found = match op.step {
            OperationStep::Submit => match adapter.act(ctx, reference, &action).await {
                Ok(found) => {
                    crash_point("after-member-action");
                    found
                }
                Err(e) => return self.on_error(op.kind, op.attempts, OperationStep::Submit, e),
            },
            _ => match adapter.get(ctx, reference).await {
                Ok(Some(found)) => found,
                Ok(None) => {
                    return refused(
                        ErrorCode::MemberError,
                        "the member no longer has the instance",
                    )
                }
                Err(e) => return self.on_error(op.kind, op.attempts, OperationStep::Await, e),
            },
        };
        if !settled(&action, &found.observed) {
            return awaiting(op.attempts);
        }
        let reshaped = match &action {
            InstanceAction::Resize { size } => Some(alliance_core::ResourceShape {
                size: Some(size.clone()),
                ..claimed.resource.shape.clone()
            }),
            _ => None,
        };
        succeeded(ResourceUpdate {
            observed: Some(found.observed),
            reshaped,
            attached_to: None,
        })
    }

    /// The instance (of the same tenant) a volume is attached to, with its member's id.
    async fn instance_of(&self, claimed: &ClaimedOperation, id: &str) -> Option<ResourceRow> {
        let scope = TenantScope::new(claimed.operation.tenant_id.clone());
        self.store()
            .resource(&scope, ResourceType::Instance, id)
            .await
            .ok()
            .flatten()
            .filter(|i| i.status.is_live())
    }

    /// One step of an attachment or a detachment.
    pub(super) async fn attachment_step(
        &self,
        claimed: &ClaimedOperation,
        adapter: &dyn MemberAdapter,
        ctx: &CallContext,
        reference: &ResourceRef,
    ) -> Next {
        let op = &claimed.operation;
        let target = match (op.kind, op.params.instance.as_deref()) {
            (OperationKind::Attach, Some(id)) => match self.instance_of(claimed, id).await {
                Some(instance) if instance.member_id == claimed.resource.member_id => {
                    Some(instance)
                }
                Some(_) => {
                    return refused(
                        ErrorCode::NotColocated,
                        "the instance is at another member than the volume",
                    )
                }
                None => return refused(ErrorCode::NotFound, format!("instance {id} not found")),
            },
            (OperationKind::Attach, None) => {
                return refused(ErrorCode::Internal, "the operation names no instance")
            }
            _ => None,
        };
        let found = match (op.step, &target) {
            (OperationStep::Submit, Some(instance)) => {
                adapter
                    .attach(ctx, reference, &reference_of(instance))
                    .await
            }
            (OperationStep::Submit, None) => adapter.detach(ctx, reference).await,
            _ => adapter
                .get(ctx, reference)
                .await
                .map(|found| found.unwrap_or_else(|| gone(reference))),
        };
        let found = match found {
            Ok(found) => found,
            Err(e) => return self.on_error(op.kind, op.attempts, op.step, e),
        };
        crash_point("after-member-action");
        match (&target, &found.observed.attached_to) {
            (Some(instance), Some(_)) => succeeded(ResourceUpdate {
                observed: Some(found.observed),
                reshaped: None,
                attached_to: Some(Some(instance.id.clone())),
            }),
            (None, None) => succeeded(ResourceUpdate {
                observed: Some(found.observed),
                reshaped: None,
                attached_to: Some(None),
            }),
            _ => awaiting(op.attempts),
        }
    }

    /// A created volume that was asked for with `attach_to` is attached before its create
    /// finishes; `None` when there is nothing to attach.
    pub(super) async fn attach_created(
        &self,
        claimed: &ClaimedOperation,
        adapter: &dyn MemberAdapter,
        ctx: &CallContext,
        found: &MemberResource,
    ) -> Option<Next> {
        let op = &claimed.operation;
        let id = claimed.resource.settings.attach_to.as_deref()?;
        if found.observed.attached_to.is_some() {
            return Some(self.created(found, Some(id.to_owned())));
        }
        let Some(instance) = self.instance_of(claimed, id).await else {
            return Some(Next::Finish(
                Finish::Failed(problem(
                    ErrorCode::NotFound,
                    format!("instance {id} to attach to was not found"),
                )),
                "failed",
            ));
        };
        let volume = ResourceRef {
            resource_type: ResourceType::Volume,
            broker_id: claimed.resource.id.clone(),
            member_resource_id: Some(found.member_resource_id.clone()),
        };
        match adapter.attach(ctx, &volume, &reference_of(&instance)).await {
            Ok(attached) if attached.observed.attached_to.is_some() => {
                Some(self.created(&attached, Some(id.to_owned())))
            }
            Ok(_) => Some(Next::Reschedule {
                step: OperationStep::Await,
                delay: Self::backoff(op.attempts, None),
                error: Some("the member is attaching the volume".into()),
                member_resource_id: Some(found.member_resource_id.clone()),
            }),
            Err(e) if e.is_transient() => Some(Next::Reschedule {
                step: OperationStep::Await,
                delay: Self::backoff(
                    op.attempts,
                    e.retry_after.or(Some(Duration::from_millis(200))),
                ),
                error: Some(e.message),
                member_resource_id: Some(found.member_resource_id.clone()),
            }),
            Err(e) => Some(self.on_error(op.kind, op.attempts, OperationStep::Await, e)),
        }
    }
}

/// How a member knows a resource the broker keeps.
fn reference_of(row: &ResourceRow) -> ResourceRef {
    ResourceRef {
        resource_type: row.resource_type,
        broker_id: row.id.clone(),
        member_resource_id: row.member_resource_id.clone(),
    }
}

/// A resource the member no longer has, as an answer that settles nothing.
fn gone(reference: &ResourceRef) -> MemberResource {
    MemberResource {
        resource_type: reference.resource_type,
        member_resource_id: reference.member_resource_id.clone().unwrap_or_default(),
        broker_id: Some(reference.broker_id.clone()),
        tenant: None,
        status: alliance_adapter_api::MemberResourceStatus::Deleting,
        detail: None,
        observed: Observed::default(),
    }
}
