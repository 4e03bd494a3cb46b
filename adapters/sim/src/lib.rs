//! `sim`: an in-process simulated member cloud.
//!
//! It keeps its own resource table with its own clock, takes `delay_ms` to provision or
//! delete, fails a configurable fraction of calls with `unavailable`, and (when given a
//! journal file) keeps its state across broker restarts, as a real member would: a broker
//! killed mid-operation finds the member's resources where it left them.
//!
//! Invariant: `create` is idempotent by broker id; the journal records every real creation
//! once (`"created"`) and every repeated create as `"create_replayed"`, so tests can prove
//! that nothing was created twice.
#![forbid(unsafe_code)]

mod objects;
mod usable;

pub use objects::ObjectStore;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alliance_adapter_api::{
    AdapterError, CallContext, Capabilities, Capability, InstanceAccess, InstanceAction,
    MemberAdapter, MemberResource, MemberResourceStatus, ObjectUrlRequest, ResourceRef,
    ResourceSpec, SignedUrl,
};
use alliance_core::{ResourceType, TenantId};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How a simulated member behaves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// How long creation and deletion take, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Fraction of calls (0.0 to 1.0) that fail with `unavailable`.
    #[serde(default)]
    pub failure_rate: f64,
    /// The member's own prices, for its statements (the broker passes the member's
    /// catalogue; `member-sim` takes `--price`).
    #[serde(skip)]
    pub prices: Vec<alliance_core::billing::Price>,
}

/// One resource in the member's own table.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimResource {
    member_resource_id: String,
    broker_id: String,
    resource_type: ResourceType,
    tenant: TenantId,
    /// The tenant's name, jurisdiction, SKU and units, for the member's statement.
    #[serde(default)]
    name: String,
    #[serde(default)]
    jurisdiction: String,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    units: u64,
    /// Milliseconds since the epoch, by the member's own clock.
    created_at_ms: u64,
    ready_at_ms: u64,
    deleted_at_ms: Option<u64>,
    /// Instances: the key, user data, ingress and public address it was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access: Option<InstanceAccess>,
    /// Instances: the broker size it runs at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<String>,
    /// Instances: powered off.
    #[serde(default)]
    stopped: bool,
    /// Instances: a power change or resize in progress until then (power state `unknown`).
    #[serde(default)]
    settles_at_ms: u64,
    /// Instances: reboots done.
    #[serde(default)]
    reboots: u32,
    /// Instances: when the SKU changed (a resize), and to what, for the statement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resized: Vec<(u64, String)>,
    /// The keys of the latest actions applied, so that a repeated call has one effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    actions: Vec<String>,
    /// Volumes: the member id of the instance it is attached to, and the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attached_to: Option<(String, String)>,
}

/// A journal line: the member's own record of what happened.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum JournalEntry {
    Created {
        resource: SimResource,
    },
    CreateReplayed {
        broker_id: String,
    },
    Deleted {
        broker_id: String,
        at_ms: u64,
    },
    /// An instance acted on or a volume (de)attached: the record as it is now.
    Updated {
        resource: SimResource,
    },
    /// A key pair imported under its member name.
    KeyImported {
        name: String,
        public_key: String,
    },
}

#[derive(Debug, Default)]
struct State {
    by_broker_id: HashMap<String, SimResource>,
    /// Key pairs by member name.
    keys: HashMap<String, String>,
    journal: Option<File>,
}

/// The simulated member.
#[derive(Debug)]
pub struct SimAdapter {
    member: String,
    config: SimConfig,
    state: Mutex<State>,
    /// Where its objects are kept (under the journal's directory, or a temporary one).
    objects_root: PathBuf,
    /// The object store and the base URL it is served at, once started.
    objects: std::sync::OnceLock<Result<(std::sync::Arc<ObjectStore>, String), String>>,
    /// Whether `objects_root` is a temporary directory of its own, removed on drop (a
    /// member in memory only keeps its objects no longer than its state).
    temporary_objects: bool,
}

impl Drop for SimAdapter {
    fn drop(&mut self) {
        if self.temporary_objects {
            // Absent when no object was ever stored; nothing else to report on drop.
            let _ = std::fs::remove_dir_all(&self.objects_root);
        }
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "the simulated member keeps its own wall clock, as a real member would"
)]
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl SimAdapter {
    /// A simulated member with its state in memory only.
    pub fn new(member: impl Into<String>, config: SimConfig) -> Self {
        let member = member.into();
        let objects_root = std::env::temp_dir().join(format!(
            "alliance-sim-objects-{}",
            uuid::Uuid::new_v4().simple()
        ));
        Self {
            member,
            config,
            state: Mutex::new(State::default()),
            objects_root,
            objects: std::sync::OnceLock::new(),
            temporary_objects: true,
        }
    }

    /// A simulated member whose state is journaled to `path` and replayed from it.
    pub fn with_journal(
        member: impl Into<String>,
        config: SimConfig,
        path: PathBuf,
    ) -> std::io::Result<Self> {
        let mut state = State::default();
        if path.exists() {
            let reader = BufReader::new(File::open(&path)?);
            for line in reader.lines() {
                let line = line?;
                // A torn last line (crash mid-write) is ignored: the call it records never
                // answered, so the broker will repeat it.
                let Ok(entry) = serde_json::from_str::<JournalEntry>(&line) else {
                    continue;
                };
                match entry {
                    JournalEntry::Created { resource } => {
                        state
                            .by_broker_id
                            .insert(resource.broker_id.clone(), resource);
                    }
                    JournalEntry::CreateReplayed { .. } => {}
                    JournalEntry::Deleted { broker_id, at_ms } => {
                        if let Some(r) = state.by_broker_id.get_mut(&broker_id) {
                            r.deleted_at_ms = Some(at_ms);
                        }
                    }
                    JournalEntry::Updated { resource } => {
                        state
                            .by_broker_id
                            .insert(resource.broker_id.clone(), resource);
                    }
                    JournalEntry::KeyImported { name, public_key } => {
                        state.keys.insert(name, public_key);
                    }
                }
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        state.journal = Some(OpenOptions::new().create(true).append(true).open(&path)?);
        let member = member.into();
        let objects_root = path
            .parent()
            .map_or_else(std::env::temp_dir, PathBuf::from)
            .join("objects");
        Ok(Self {
            member,
            config,
            state: Mutex::new(state),
            objects_root,
            objects: std::sync::OnceLock::new(),
            temporary_objects: false,
        })
    }

    /// Every call: refused once its deadline has passed, then failed at the configured rate.
    fn admit(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        if self.config.failure_rate > 0.0
            && rand::rng().random_bool(self.config.failure_rate.clamp(0.0, 1.0))
        {
            return Err(AdapterError::unavailable(format!(
                "{} is simulating a failure",
                self.member
            ))
            .with_retry_after(Duration::from_millis(50)));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another call panicked; the table is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The member's own usage record: each resource from when it became active (by the
    /// member's clock) until it was deleted.
    pub fn usage_spans(&self) -> Vec<alliance_core::billing::UsageSpan> {
        let state = self.lock();
        let ms = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        let mut spans = Vec::new();
        for r in state.by_broker_id.values() {
            // The journal holds values this member wrote itself: parsed back, they are
            // valid; a line that is not is left out of the statement, not guessed at.
            let (Ok(member), Ok(jurisdiction)) = (
                alliance_core::MemberId::parse(&self.member),
                alliance_core::Jurisdiction::parse(&r.jurisdiction),
            ) else {
                continue;
            };
            // One span per SKU the resource ran at: a resize ends one and starts the next.
            let mut start = r.ready_at_ms;
            let mut sku = r.first_sku().to_owned();
            let mut changes = r.resized.iter().peekable();
            loop {
                let (end, next) = match changes.next() {
                    Some((at, next)) => (Some(*at), Some(next.clone())),
                    // Until the member reports it gone (the shared metering rule).
                    None => (r.deleted_at_ms.map(|at| at + self.config.delay_ms), None),
                };
                spans.push(alliance_core::billing::UsageSpan {
                    resource_id: r.broker_id.clone(),
                    resource_name: r.name.clone(),
                    resource_type: r.resource_type,
                    tenant: r.tenant.clone(),
                    member: member.clone(),
                    jurisdiction,
                    sku: sku.clone(),
                    units: rust_decimal::Decimal::from(r.units),
                    start_ms: ms(start),
                    end_ms: end.map(ms),
                });
                match (end, next) {
                    (Some(at), Some(next)) => {
                        start = at.max(start);
                        sku = next;
                    }
                    _ => break,
                }
            }
        }
        spans
    }

    /// The member's own FOCUS statement for `period`, metered and rated by itself.
    pub fn statement_csv(&self, period: &str) -> Result<String, AdapterError> {
        let period = alliance_core::billing::Period::parse(period)
            .map_err(|e| AdapterError::invalid(e.to_string()))?;
        let catalogue = alliance_core::billing::PriceCatalogue::new(&self.config.prices)
            .map_err(AdapterError::invalid)?;
        let lines = alliance_core::billing::meter(
            &self.usage_spans(),
            period,
            &catalogue,
            i64::try_from(now_ms()).unwrap_or(i64::MAX),
        );
        let mut out = Vec::new();
        alliance_core::focus::write(&mut out, period, &lines, &std::collections::BTreeMap::new())
            .map_err(|e| AdapterError::invalid(format!("cannot write the statement: {e}")))?;
        String::from_utf8(out).map_err(|e| AdapterError::invalid(e.to_string()))
    }

    fn view(&self, r: &SimResource, now: u64) -> Option<MemberResource> {
        let status = match r.deleted_at_ms {
            Some(at) if now >= at + self.config.delay_ms => return None,
            Some(_) => MemberResourceStatus::Deleting,
            None if now >= r.ready_at_ms => MemberResourceStatus::Active,
            None => MemberResourceStatus::Provisioning,
        };
        Some(MemberResource {
            resource_type: r.resource_type,
            member_resource_id: r.member_resource_id.clone(),
            broker_id: Some(r.broker_id.clone()),
            tenant: Some(r.tenant.clone()),
            status,
            detail: None,
            observed: self.observed(r, now),
        })
    }
}

impl State {
    /// The resource `broker_id` names, unless it was deleted, `change`d once `entry` is
    /// journaled (the journal holds every change the table went through); `None` when
    /// there is no such resource.
    fn change_live<T>(
        &mut self,
        broker_id: &str,
        entry: JournalEntry,
        change: impl FnOnce(&mut SimResource) -> T,
    ) -> Result<Option<T>, AdapterError> {
        let Self {
            by_broker_id,
            journal,
            ..
        } = self;
        match by_broker_id.get_mut(broker_id) {
            Some(r) if r.deleted_at_ms.is_none() => {
                append(journal, &entry)?;
                Ok(Some(change(r)))
            }
            _ => Ok(None),
        }
    }
}

fn append(journal: &mut Option<File>, entry: &JournalEntry) -> Result<(), AdapterError> {
    if let Some(file) = journal {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| AdapterError::unavailable(format!("sim journal: {e}")))?;
        line.push(b'\n');
        file.write_all(&line)
            .map_err(|e| AdapterError::unavailable(format!("sim journal: {e}")))?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MemberAdapter for SimAdapter {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        self.admit(ctx)?;
        let now = now_ms();
        let mut state = self.lock();
        let replayed = JournalEntry::CreateReplayed {
            broker_id: spec.broker_id.clone(),
        };
        if let Some(view) = state.change_live(&spec.broker_id, replayed, |existing| {
            self.view(existing, now)
        })? {
            return view.ok_or_else(|| AdapterError::invalid("resource was deleted"));
        }
        let resource = SimResource {
            member_resource_id: format!("sim-{}", uuid::Uuid::new_v4().simple()),
            broker_id: spec.broker_id.clone(),
            resource_type: spec.resource_type,
            tenant: spec.tenant.clone(),
            name: spec.name.clone(),
            jurisdiction: spec.jurisdiction.to_string(),
            sku: alliance_core::sku_of(spec.resource_type, &spec.shape()).0,
            units: if spec.resource_type == ResourceType::Volume {
                u64::from(spec.size_gb.unwrap_or(0))
            } else {
                1
            },
            created_at_ms: now,
            ready_at_ms: now + self.config.delay_ms,
            deleted_at_ms: None,
            access: spec.access.clone(),
            size: spec.size.as_ref().map(ToString::to_string),
            stopped: false,
            settles_at_ms: 0,
            reboots: 0,
            resized: Vec::new(),
            actions: Vec::new(),
            attached_to: None,
        };
        if let Some(key) = spec.access.as_ref().and_then(|a| a.ssh_key.as_ref()) {
            let imported = JournalEntry::KeyImported {
                name: key.member_name.clone(),
                public_key: key.public_key.clone(),
            };
            append(&mut state.journal, &imported)?;
            state
                .keys
                .insert(key.member_name.clone(), key.public_key.clone());
        }
        append(
            &mut state.journal,
            &JournalEntry::Created {
                resource: resource.clone(),
            },
        )?;
        let view = self.view(&resource, now);
        state.by_broker_id.insert(spec.broker_id.clone(), resource);
        view.ok_or_else(|| AdapterError::invalid("resource vanished"))
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        self.admit(ctx)?;
        let state = self.lock();
        Ok(state
            .by_broker_id
            .get(&resource.broker_id)
            .and_then(|r| self.view(r, now_ms())))
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        self.admit(ctx)?;
        let now = now_ms();
        let deleted = JournalEntry::Deleted {
            broker_id: resource.broker_id.clone(),
            at_ms: now,
        };
        let member_id = self.lock().change_live(&resource.broker_id, deleted, |r| {
            r.deleted_at_ms = Some(now);
            r.member_resource_id.clone()
        })?;
        if let Some(member_id) = member_id {
            self.after_delete(resource.resource_type, &member_id)?;
        }
        Ok(())
    }

    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        self.admit(ctx)?;
        let now = now_ms();
        let state = self.lock();
        let mut out: Vec<MemberResource> = state
            .by_broker_id
            .values()
            .filter(|r| r.resource_type == resource_type && tenant.is_none_or(|t| &r.tenant == t))
            .filter_map(|r| self.view(r, now))
            .collect();
        out.sort_by(|a, b| a.member_resource_id.cmp(&b.member_resource_id));
        Ok(out)
    }

    async fn statement(
        &self,
        ctx: &CallContext,
        period: &str,
    ) -> Result<Option<String>, AdapterError> {
        self.admit(ctx)?;
        self.statement_csv(period).map(Some)
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        self.admit(ctx)
    }

    fn capabilities(&self) -> Capabilities {
        Capability::ALL.into_iter().collect()
    }

    async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        self.admit(ctx)?;
        self.act_now(&ctx.idempotency_key, &instance.broker_id, action)
    }

    async fn attach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        self.admit(ctx)?;
        self.attach_now(&volume.broker_id, Some(&instance.broker_id))
    }

    async fn detach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        self.admit(ctx)?;
        self.attach_now(&volume.broker_id, None)
    }

    async fn object_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &ObjectUrlRequest,
    ) -> Result<SignedUrl, AdapterError> {
        self.admit(ctx)?;
        self.sign_now(&bucket.broker_id, request, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alliance_core::{DataClassName, Jurisdiction};

    fn spec(id: &str) -> ResourceSpec {
        ResourceSpec {
            broker_id: id.to_owned(),
            resource_type: ResourceType::Bucket,
            name: "b".to_owned(),
            tenant: TenantId::parse("acme").expect("tenant"),
            jurisdiction: Jurisdiction::parse("FR").expect("FR"),
            data_class: DataClassName::parse("standard").expect("class"),
            size: None,
            image: None,
            size_gb: None,
            access: None,
        }
    }

    fn ctx() -> CallContext {
        CallContext::new(None, "k", Duration::from_secs(1))
    }

    #[tokio::test]
    async fn create_is_idempotent_and_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("sim-{}", uuid::Uuid::new_v4()));
        let path = dir.join("journal.jsonl");
        let first = {
            let sim =
                SimAdapter::with_journal("m", SimConfig::default(), path.clone()).expect("open");
            let a = sim.create(&ctx(), &spec("r1")).await.expect("create");
            let b = sim.create(&ctx(), &spec("r1")).await.expect("again");
            assert_eq!(a.member_resource_id, b.member_resource_id);
            a
        };
        let sim =
            SimAdapter::with_journal("m", SimConfig::default(), path.clone()).expect("reopen");
        let again = sim
            .create(&ctx(), &spec("r1"))
            .await
            .expect("after restart");
        assert_eq!(first.member_resource_id, again.member_resource_id);
        let listed = sim
            .list(&ctx(), ResourceType::Bucket, None)
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        let reference = ResourceRef {
            resource_type: ResourceType::Bucket,
            broker_id: "r1".into(),
            member_resource_id: None,
        };
        sim.delete(&ctx(), &reference).await.expect("delete");
        sim.delete(&ctx(), &reference).await.expect("delete again");
        assert_eq!(sim.get(&ctx(), &reference).await.expect("get"), None);
        let unknown = ResourceRef {
            broker_id: "nope".into(),
            ..reference
        };
        sim.delete(&ctx(), &unknown)
            .await
            .expect("unknown delete succeeds");
        let journal = std::fs::read_to_string(&path).expect("journal");
        assert_eq!(journal.matches("\"created\"").count(), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    /// One plain HTTP/1.1 exchange with the object listener; the status and the body.
    fn exchange(url: &str, method: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use std::io::Read as _;
        let rest = url.strip_prefix("http://").expect("http");
        let (host, path) = rest.split_at(rest.find('/').expect("path"));
        let mut stream = std::net::TcpStream::connect(host).expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body).expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        let text = String::from_utf8_lossy(&answer);
        let status = text[9..12].parse().expect("status");
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head");
        (status, answer[split + 4..].to_vec())
    }

    #[test]
    fn urls_handed_out_before_a_restart_still_reach_the_objects() {
        let dir = std::env::temp_dir().join(format!("sim-{}", uuid::Uuid::new_v4()));
        let path = dir.join("journal.jsonl");
        let request = |method| alliance_adapter_api::ObjectUrlRequest {
            object: "q4/report.csv".into(),
            method,
            expires_in: Duration::from_secs(600),
        };
        let get = {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            let sim =
                SimAdapter::with_journal("m", SimConfig::default(), path.clone()).expect("open");
            runtime.block_on(async {
                sim.create(&ctx(), &spec("b1")).await.expect("create");
            });
            let _entered = runtime.enter();
            let put = sim
                .sign_now(
                    "b1",
                    &request(alliance_adapter_api::ObjectMethod::Put),
                    now_ms(),
                )
                .expect("put url");
            let get = sim
                .sign_now(
                    "b1",
                    &request(alliance_adapter_api::ObjectMethod::Get),
                    now_ms(),
                )
                .expect("get url");
            assert_eq!(exchange(&put.url, "PUT", b"acme,12.50\n").0, 200);
            get
            // The runtime ends here, and the listener with it: the broker stops.
        };
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let _entered = runtime.enter();
        let sim = SimAdapter::with_journal("m", SimConfig::default(), path).expect("reopen");
        // A URL is first signed after the restart, which starts the listener again.
        sim.sign_now(
            "b1",
            &request(alliance_adapter_api::ObjectMethod::Get),
            now_ms(),
        )
        .expect("url after the restart");
        assert_eq!(
            exchange(&get.url, "GET", b""),
            (200, b"acme,12.50\n".to_vec())
        );
        drop(runtime);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn provisioning_takes_the_delay() {
        let sim = SimAdapter::new(
            "m",
            SimConfig {
                delay_ms: 60_000,
                failure_rate: 0.0,
                ..SimConfig::default()
            },
        );
        let r = sim.create(&ctx(), &spec("r2")).await.expect("create");
        assert_eq!(r.status, MemberResourceStatus::Provisioning);
    }

    #[tokio::test]
    async fn failure_rate_one_always_fails_transiently() {
        let sim = SimAdapter::new(
            "m",
            SimConfig {
                delay_ms: 0,
                failure_rate: 1.0,
                ..SimConfig::default()
            },
        );
        let err = sim.create(&ctx(), &spec("r3")).await.expect_err("fails");
        assert!(err.is_transient());
    }
}
