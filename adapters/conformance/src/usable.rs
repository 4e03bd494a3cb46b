//! Checks of what makes resources usable, one group per capability the member advertises
//! (`MemberAdapter::capabilities`); a capability it does not offer is skipped with the
//! reason. They run on one sandbox instance (created with a key, user data and an ingress
//! rule), a volume attached to it and detached, and a bucket whose signed URLs store and
//! return bytes over real HTTP. Everything is deleted again.

use std::time::{Duration, Instant};

use alliance_adapter_api::{
    Capability, IngressRule, InstanceAccess, InstanceAction, MemberResource, MemberResourceStatus,
    ObjectMethod, ObjectUrlRequest, PowerState, Protocol, ResourceRef, ResourceSpec, SshKey,
    UserData,
};
use alliance_core::{DataClassName, ResourceType};

use crate::{Outcome, Run};

/// A throwaway Ed25519 key (its private half was never kept).
const SANDBOX_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV conformance";
/// `#cloud-config\n`, base64.
const SANDBOX_USER_DATA: &str = "I2Nsb3VkLWNvbmZpZwo=";

impl Run<'_> {
    fn spec(&self, service: ResourceType, access: Option<InstanceAccess>) -> ResourceSpec {
        let instance = service == ResourceType::Instance;
        ResourceSpec {
            broker_id: format!(
                "conf-{}-{}",
                service.as_str(),
                uuid::Uuid::new_v4().simple()
            ),
            resource_type: service,
            name: format!("conformance {service}"),
            tenant: self.options.tenant.clone(),
            jurisdiction: self.options.jurisdiction,
            data_class: DataClassName::parse("standard")
                .unwrap_or_else(|_| crate::unreachable_class()),
            size: instance.then(|| self.options.size.clone()).flatten(),
            image: instance.then(|| self.options.image.clone()).flatten(),
            size_gb: (service == ResourceType::Volume).then_some(1),
            access,
        }
    }

    /// Creates a resource and waits until it is active: its reference and last view.
    async fn sandbox(&self, spec: &ResourceSpec) -> Result<(ResourceRef, MemberResource), String> {
        let created = self
            .adapter
            .create(&self.ctx(&format!("conformance-{}", spec.broker_id)), spec)
            .await
            .map_err(|e| format!("create: {e}"))?;
        let reference = ResourceRef {
            resource_type: spec.resource_type,
            broker_id: spec.broker_id.clone(),
            member_resource_id: Some(created.member_resource_id),
        };
        let found = self
            .poll(&reference, true, |r| {
                r.status == MemberResourceStatus::Active
            })
            .await?;
        Ok((reference, found))
    }

    /// Polls until the member shows `done`; the last view.
    async fn until(
        &self,
        reference: &ResourceRef,
        done: impl Fn(&MemberResource) -> bool,
    ) -> Result<MemberResource, String> {
        self.poll(reference, false, done).await
    }

    /// Polls until the member shows `done`. A `fresh` resource (just created) may stay
    /// unseen for [`crate::UNSEEN_GRACE`]: members read behind their writes under load.
    async fn poll(
        &self,
        reference: &ResourceRef,
        fresh: bool,
        done: impl Fn(&MemberResource) -> bool,
    ) -> Result<MemberResource, String> {
        let started = Instant::now();
        let deadline = started + self.options.settle_timeout;
        let mut wait = Duration::from_millis(50);
        loop {
            match self
                .adapter
                .get(&self.ctx("conformance-poll"), reference)
                .await
            {
                Ok(Some(r)) if done(&r) => return Ok(r),
                Ok(Some(r)) if r.status == MemberResourceStatus::Error => {
                    return Err(format!(
                        "the member reports an error: {}",
                        r.detail.unwrap_or_default()
                    ))
                }
                Ok(None) if fresh && started.elapsed() < crate::UNSEEN_GRACE => {}
                Ok(None) => return Err("the resource vanished".into()),
                Ok(Some(_)) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e.to_string()),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not settled after {:?}",
                    self.options.settle_timeout
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    fn outcome(result: Result<(), String>) -> Outcome {
        match result {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::Failed(why),
        }
    }

    async fn delete_quietly(&self, reference: &ResourceRef) {
        let _ = self
            .adapter
            .delete(&self.ctx("conformance-cleanup"), reference)
            .await;
        let _ = self
            .until(reference, |r| r.status == MemberResourceStatus::Deleting)
            .await;
    }

    /// Every capability check; skipped with the reason when the member does not offer it.
    pub(crate) async fn capabilities(&mut self) {
        let offered = self.adapter.capabilities();
        let services = self.options.services.clone();
        let skip = |cap: Capability, needs: &[ResourceType]| -> Option<String> {
            if !offered.contains(&cap) {
                Some(format!("the member does not offer `{}`", cap.as_str()))
            } else {
                needs
                    .iter()
                    .find(|s| !services.contains(s))
                    .map(|s| format!("the member does not offer {s}s"))
            }
        };
        let mut instance = None;
        let started = Instant::now();
        if let Some(why) = skip(Capability::InstanceAccess, &[ResourceType::Instance]) {
            self.record(
                "an instance gets its key, user data and rules, and reports addresses",
                None,
                started,
                Outcome::Skipped(why),
            );
        } else {
            let access = InstanceAccess {
                ssh_key: Some(SshKey {
                    member_name: format!("alliance-{}-conformance", self.options.tenant),
                    public_key: SANDBOX_KEY.to_owned(),
                }),
                user_data: Some(UserData(SANDBOX_USER_DATA.to_owned())),
                ingress: vec![IngressRule {
                    protocol: Protocol::Tcp,
                    port: Some(22),
                    cidr: "203.0.113.0/24".into(),
                }],
                public_ip: false,
            };
            let spec = self.spec(ResourceType::Instance, Some(access));
            let result = match self.sandbox(&spec).await {
                Ok((reference, found)) => {
                    // Addresses as the member reports them: none for an instance without a
                    // network, but the member must say so.
                    let reported = found.observed.addresses.is_some();
                    instance = Some(reference);
                    if reported {
                        Ok(())
                    } else {
                        Err("the active instance reports no addresses at all".to_owned())
                    }
                }
                Err(e) => Err(e),
            };
            self.record(
                "an instance gets its key, user data and rules, and reports addresses",
                None,
                started,
                Self::outcome(result),
            );
        }
        self.actions(
            skip(Capability::InstanceActions, &[ResourceType::Instance]),
            instance.as_ref(),
        )
        .await;
        self.attachments(
            skip(
                Capability::VolumeAttach,
                &[ResourceType::Instance, ResourceType::Volume],
            ),
            instance.as_ref(),
        )
        .await;
        if let Some(reference) = &instance {
            self.delete_quietly(reference).await;
        }
        self.urls(skip(Capability::ObjectUrls, &[ResourceType::Bucket]))
            .await;
    }

    async fn actions(&mut self, skipped: Option<String>, instance: Option<&ResourceRef>) {
        let started = Instant::now();
        let name = "stop, start and reboot settle, each once per key";
        let instance = match (skipped, instance) {
            (Some(why), _) => {
                return {
                    self.record(name, None, started, Outcome::Skipped(why));
                }
            }
            (None, None) => {
                return {
                    self.record(
                        name,
                        None,
                        started,
                        Outcome::Skipped(
                            "no sandbox instance (instance.access failed or is not offered)".into(),
                        ),
                    );
                }
            }
            (None, Some(i)) => i.clone(),
        };
        let mut result = Ok(());
        for (action, power) in [
            (InstanceAction::Stop, PowerState::Stopped),
            (InstanceAction::Start, PowerState::Running),
            (InstanceAction::Reboot, PowerState::Running),
        ] {
            let key = format!(
                "conformance-{}-{}",
                action.name(),
                uuid::Uuid::new_v4().simple()
            );
            let step = async {
                for _ in 0..2 {
                    self.adapter
                        .act(&self.ctx(&key), &instance, &action)
                        .await
                        .map_err(|e| format!("{}: {e}", action.name()))?;
                }
                self.until(&instance, |r| r.observed.power_state == Some(power))
                    .await
                    .map_err(|e| format!("{}: {e}", action.name()))
            };
            if let Err(e) = step.await {
                result = Err(e);
                break;
            }
        }
        self.record(name, None, started, Self::outcome(result));

        let started = Instant::now();
        let name = "resize settles at the new size";
        let Some(size) = self.options.resize_to.clone() else {
            self.record(
                name,
                None,
                started,
                Outcome::Skipped("no second size to resize to".into()),
            );
            return;
        };
        let action = InstanceAction::Resize { size: size.clone() };
        let result = async {
            self.adapter
                .act(
                    &self.ctx(&format!(
                        "conformance-resize-{}",
                        uuid::Uuid::new_v4().simple()
                    )),
                    &instance,
                    &action,
                )
                .await
                .map_err(|e| format!("resize: {e}"))?;
            self.until(&instance, |r| {
                r.observed
                    .power_state
                    .is_some_and(|p| p != PowerState::Unknown)
                    && r.observed.size.as_ref().is_none_or(|s| s == &size)
            })
            .await
            .map(|_| ())
        }
        .await;
        self.record(name, None, started, Self::outcome(result));
    }

    async fn attachments(&mut self, skipped: Option<String>, instance: Option<&ResourceRef>) {
        let started = Instant::now();
        let name = "a volume attaches to an instance and detaches";
        let instance = match (skipped, instance) {
            (Some(why), _) => {
                return {
                    self.record(name, None, started, Outcome::Skipped(why));
                }
            }
            (None, None) => {
                return {
                    self.record(
                        name,
                        None,
                        started,
                        Outcome::Skipped(
                            "no sandbox instance (instance.access failed or is not offered)".into(),
                        ),
                    );
                }
            }
            (None, Some(i)) => i.clone(),
        };
        let spec = self.spec(ResourceType::Volume, None);
        let mut volume = None;
        let result = async {
            let (reference, _) = self.sandbox(&spec).await?;
            volume = Some(reference.clone());
            let ctx = self.ctx(&format!("conformance-attach-{}", spec.broker_id));
            self.adapter
                .attach(&ctx, &reference, &instance)
                .await
                .map_err(|e| format!("attach: {e}"))?;
            self.adapter
                .attach(&ctx, &reference, &instance)
                .await
                .map_err(|e| format!("attach again: {e}"))?;
            self.until(&reference, |r| r.observed.attached_to.is_some())
                .await
                .map_err(|e| format!("attach: {e}"))?;
            self.adapter
                .detach(&self.ctx("conformance-detach"), &reference)
                .await
                .map_err(|e| format!("detach: {e}"))?;
            self.until(&reference, |r| r.observed.attached_to.is_none())
                .await
                .map_err(|e| format!("detach: {e}"))?;
            Ok(())
        }
        .await;
        if let Some(reference) = &volume {
            self.delete_quietly(reference).await;
        }
        self.record(name, None, started, Self::outcome(result));
    }

    async fn sign(
        &self,
        reference: &ResourceRef,
        method: ObjectMethod,
    ) -> Result<alliance_adapter_api::SignedUrl, String> {
        let request = ObjectUrlRequest {
            object: "conformance/hello.txt".into(),
            method,
            expires_in: Duration::from_secs(300),
        };
        self.adapter
            .object_url(&self.ctx("conformance-url"), reference, &request)
            .await
            .map_err(|e| format!("sign {}: {e}", method.as_str()))
    }

    async fn urls(&mut self, skipped: Option<String>) {
        let started = Instant::now();
        let name = "signed URLs store, return and delete an object over HTTP";
        if let Some(why) = skipped {
            self.record(name, None, started, Outcome::Skipped(why));
            return;
        }
        let spec = self.spec(ResourceType::Bucket, None);
        let mut bucket = None;
        let result = async {
            let (reference, _) = self.sandbox(&spec).await?;
            bucket = Some(reference.clone());
            let http = reqwest::Client::builder()
                .timeout(self.options.call_timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let body = format!("conformance {}\n", spec.broker_id);
            // The URL is a secret: errors name the method, never the URL.
            let put = self.sign(&reference, ObjectMethod::Put).await?;
            let stored = http
                .put(&put.url)
                .body(body.clone())
                .send()
                .await
                .map_err(|_| "PUT through the signed URL failed to connect".to_owned())?;
            if !stored.status().is_success() {
                return Err(format!(
                    "PUT through the signed URL answered {}",
                    stored.status()
                ));
            }
            let get = self.sign(&reference, ObjectMethod::Get).await?;
            let read = http
                .get(&get.url)
                .send()
                .await
                .map_err(|_| "GET through the signed URL failed to connect".to_owned())?;
            if !read.status().is_success() {
                return Err(format!(
                    "GET through the signed URL answered {}",
                    read.status()
                ));
            }
            let bytes = read
                .bytes()
                .await
                .map_err(|e| format!("GET body: {}", e.without_url()))?;
            if bytes.as_ref() != body.as_bytes() {
                return Err("GET returned other bytes than PUT stored".into());
            }
            let delete = self.sign(&reference, ObjectMethod::Delete).await?;
            let gone = http
                .delete(&delete.url)
                .send()
                .await
                .map_err(|_| "DELETE through the signed URL failed to connect".to_owned())?;
            if !gone.status().is_success() {
                return Err(format!(
                    "DELETE through the signed URL answered {}",
                    gone.status()
                ));
            }
            Ok(())
        }
        .await;
        if let Some(reference) = &bucket {
            self.delete_quietly(reference).await;
        }
        self.record(name, None, started, Self::outcome(result));
    }
}
