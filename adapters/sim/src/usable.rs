//! What makes the simulated member's resources usable: addresses and power state, actions
//! on instances, volume attachments, and signed object URLs served by its own listener.
//!
//! Each change is journaled (`Updated`) before it is answered, and each action remembers
//! its key, so a broker that repeats a call after a crash gets one effect.

use std::sync::Arc;

use alliance_adapter_api::{
    AdapterError, Addresses, InstanceAction, MemberResource, ObjectUrlRequest, Observed,
    PowerState, SignedUrl,
};
use alliance_core::ResourceType;

use crate::objects::ObjectStore;
use crate::{append, now_ms, JournalEntry, SimAdapter, SimResource};

/// How many action keys an instance remembers.
const REMEMBERED_ACTIONS: usize = 32;

impl SimResource {
    /// The SKU it was created at.
    pub(crate) fn first_sku(&self) -> &str {
        &self.sku
    }
}

/// A stable address derived from the member's id for the resource.
fn address(prefix: &str, id: &str) -> String {
    let h = id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let [_, a, b, c] = h.to_be_bytes();
    match prefix {
        "10" => format!("10.{a}.{b}.{}", c.max(2)),
        _ => format!("198.51.100.{}", c.max(2)),
    }
}

fn not_found(what: &str, id: &str) -> AdapterError {
    AdapterError::new(
        alliance_adapter_api::ErrorKind::NotFound,
        alliance_adapter_api::ErrorSource::Member,
        alliance_adapter_api::Retry::Never,
        format!("no {what} {id} at this member"),
    )
}

impl SimAdapter {
    /// What the member reports about a resource besides its state.
    pub(crate) fn observed(&self, r: &SimResource, now: u64) -> Observed {
        let active_since = (now >= r.ready_at_ms)
            .then(|| i64::try_from(r.ready_at_ms / 1000).ok())
            .flatten();
        let observed = match r.resource_type {
            ResourceType::Instance => Observed {
                addresses: Some(Addresses {
                    private: vec![address("10", &r.member_resource_id)],
                    public: if r.access.as_ref().is_some_and(|a| a.public_ip) {
                        vec![address("198", &r.member_resource_id)]
                    } else {
                        Vec::new()
                    },
                }),
                power_state: Some(if now < r.ready_at_ms || now < r.settles_at_ms {
                    PowerState::Unknown
                } else if r.stopped {
                    PowerState::Stopped
                } else {
                    PowerState::Running
                }),
                size: r
                    .size
                    .as_deref()
                    .and_then(|s| alliance_core::SizeName::parse(s).ok()),
                ..Observed::default()
            },
            ResourceType::Volume => Observed {
                attached_to: r.attached_to.as_ref().map(|(i, _)| i.clone()),
                device: r.attached_to.as_ref().map(|(_, d)| d.clone()),
                ..Observed::default()
            },
            ResourceType::Bucket => Observed {
                endpoint: self.objects().ok().map(|(_, base)| {
                    format!("{base}/objects/{}/{}", self.member, r.member_resource_id)
                }),
                ..Observed::default()
            },
        };
        Observed {
            active_since,
            ..observed
        }
    }

    /// Applies `action` to the instance `broker_id` once per `key`.
    pub(crate) fn act_now(
        &self,
        key: &str,
        broker_id: &str,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        let now = now_ms();
        let mut state = self.lock();
        let mut r = match state.by_broker_id.get(broker_id) {
            Some(r) if r.deleted_at_ms.is_none() && r.resource_type == ResourceType::Instance => {
                r.clone()
            }
            _ => return Err(not_found("instance", broker_id)),
        };
        if now < r.ready_at_ms {
            return Err(AdapterError::unavailable(
                "the instance is still being created",
            ));
        }
        if !r.actions.iter().any(|k| k == key) {
            match action {
                InstanceAction::Start => r.stopped = false,
                InstanceAction::Stop => r.stopped = true,
                InstanceAction::Reboot if r.stopped => {
                    return Err(AdapterError::invalid("a stopped instance cannot reboot"))
                }
                InstanceAction::Reboot => r.reboots += 1,
                InstanceAction::Resize { size } => {
                    if r.size.as_deref() != Some(size.as_str()) {
                        r.size = Some(size.to_string());
                        r.resized.push((now, format!("instance.{size}")));
                    }
                }
            }
            r.settles_at_ms = now + self.config.delay_ms;
            r.actions.push(key.to_owned());
            if r.actions.len() > REMEMBERED_ACTIONS {
                r.actions.remove(0);
            }
            append(
                &mut state.journal,
                &JournalEntry::Updated {
                    resource: r.clone(),
                },
            )?;
            state.by_broker_id.insert(broker_id.to_owned(), r.clone());
        }
        drop(state);
        self.view(&r, now)
            .ok_or_else(|| not_found("instance", broker_id))
    }

    /// Attaches the volume `volume` to `instance` (both broker ids), or detaches it.
    pub(crate) fn attach_now(
        &self,
        volume: &str,
        instance: Option<&str>,
    ) -> Result<MemberResource, AdapterError> {
        let now = now_ms();
        let mut state = self.lock();
        let live =
            |r: &&SimResource, t: ResourceType| r.deleted_at_ms.is_none() && r.resource_type == t;
        let mut v = match state.by_broker_id.get(volume) {
            Some(r) if live(&r, ResourceType::Volume) => r.clone(),
            _ => return Err(not_found("volume", volume)),
        };
        let target = match instance {
            None => None,
            Some(id) => match state.by_broker_id.get(id) {
                Some(r) if live(&r, ResourceType::Instance) && r.tenant == v.tenant => {
                    Some(r.member_resource_id.clone())
                }
                _ => return Err(not_found("instance", id)),
            },
        };
        let current = v.attached_to.as_ref().map(|(i, _)| i.clone());
        if current == target {
            drop(state);
            return self
                .view(&v, now)
                .ok_or_else(|| not_found("volume", volume));
        }
        v.attached_to = match (&current, target) {
            (Some(other), Some(_)) => {
                return Err(AdapterError::invalid(format!(
                    "the volume is attached to {other}; detach it first"
                )))
            }
            (_, None) => None,
            (None, Some(target)) => {
                let used = state
                    .by_broker_id
                    .values()
                    .filter(|r| {
                        r.deleted_at_ms.is_none()
                            && r.attached_to.as_ref().is_some_and(|(i, _)| i == &target)
                    })
                    .count();
                let letter = char::from(b'b' + u8::try_from(used.min(24)).unwrap_or(24));
                Some((target, format!("/dev/vd{letter}")))
            }
        };
        append(
            &mut state.journal,
            &JournalEntry::Updated {
                resource: v.clone(),
            },
        )?;
        state.by_broker_id.insert(volume.to_owned(), v.clone());
        drop(state);
        self.view(&v, now)
            .ok_or_else(|| not_found("volume", volume))
    }

    /// What a deleted resource leaves behind: an instance's volumes are detached (as
    /// OpenStack and EC2 do), a bucket's objects removed.
    pub(crate) fn after_delete(
        &self,
        resource_type: ResourceType,
        member_id: &str,
    ) -> Result<(), AdapterError> {
        match resource_type {
            ResourceType::Instance => {
                let mut state = self.lock();
                let attached: Vec<SimResource> = state
                    .by_broker_id
                    .values()
                    .filter(|r| r.attached_to.as_ref().is_some_and(|(i, _)| i == member_id))
                    .cloned()
                    .collect();
                for mut v in attached {
                    v.attached_to = None;
                    append(
                        &mut state.journal,
                        &JournalEntry::Updated {
                            resource: v.clone(),
                        },
                    )?;
                    state.by_broker_id.insert(v.broker_id.clone(), v);
                }
                Ok(())
            }
            ResourceType::Bucket => match self.objects() {
                Ok((store, _)) => store.remove_bucket(&self.member, member_id),
                Err(_) => Ok(()),
            },
            ResourceType::Volume => Ok(()),
        }
    }

    /// A signed URL for one object of the bucket `broker_id`.
    pub(crate) fn sign_now(
        &self,
        broker_id: &str,
        request: &ObjectUrlRequest,
        now: u64,
    ) -> Result<SignedUrl, AdapterError> {
        let bucket = {
            let state = self.lock();
            match state.by_broker_id.get(broker_id) {
                Some(r) if r.deleted_at_ms.is_none() && r.resource_type == ResourceType::Bucket => {
                    r.member_resource_id.clone()
                }
                _ => return Err(not_found("bucket", broker_id)),
            }
        };
        let (store, base) = self.objects()?;
        Ok(store.sign(
            &base,
            &self.member,
            &bucket,
            request,
            i64::try_from(now).unwrap_or(i64::MAX),
        ))
    }

    /// The object store and its base URL: its own loopback listener, started on first use
    /// (inside the runtime that calls the member), unless [`Self::serve_objects_at`] gave
    /// the member's own front.
    fn objects(&self) -> Result<(Arc<ObjectStore>, String), AdapterError> {
        self.objects
            .get_or_init(|| self.start_listener())
            .clone()
            .map_err(AdapterError::unavailable)
    }

    fn start_listener(&self) -> Result<(Arc<ObjectStore>, String), String> {
        let store = Arc::new(
            ObjectStore::open(self.objects_root.clone())
                .map_err(|e| format!("cannot open the object store: {e}"))?,
        );
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the object store needs a runtime".to_owned())?;
        // The port is kept beside the objects, so that URLs handed out before a restart
        // still reach them after it (a port taken meanwhile gives a new one).
        let port_file = self.objects_root.join(format!(".port-{}", self.member));
        let remembered = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
        let listener = remembered
            .and_then(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .map_or_else(|| std::net::TcpListener::bind(("127.0.0.1", 0)), Ok)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("cannot listen for objects: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen for objects: {e}"))?;
        if remembered != Some(addr.port()) {
            let tmp = port_file.with_extension(format!("tmp{}", std::process::id()));
            if let Err(e) = std::fs::write(&tmp, addr.port().to_string())
                .and_then(|()| std::fs::rename(&tmp, &port_file))
            {
                tracing::warn!(member = %self.member, error = %e, "cannot remember the object port");
            }
        }
        let router = store.clone().router();
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot listen for objects: {e}"))?;
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "the simulated member's object listener stopped");
            }
        });
        tracing::info!(member = %self.member, %addr, "simulated member serves objects");
        Ok((store, format!("http://{addr}")))
    }

    /// Serves the member's objects on the caller's own HTTP front at `base` (member-sim):
    /// the routes to merge into its router.
    pub fn serve_objects_at(&self, base: String) -> std::io::Result<axum::Router> {
        let store = Arc::new(ObjectStore::open(self.objects_root.clone())?);
        let router = store.clone().router();
        let _ = self.objects.set(Ok((store, base)));
        Ok(router)
    }
}
