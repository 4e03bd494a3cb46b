//! The conformance suite: the one body of checks that every adapter's tests, `alliance
//! conformance` and partner onboarding run against a member.
//!
//! Per service the member offers: create; the same create retried with the same key yields
//! the same resource (no duplicate); get until active; list shows it for its tenant; delete;
//! get until gone; deleting an unknown resource succeeds; reading an unknown resource is
//! "not found". Across services: health answers, and a call whose deadline has passed fails
//! as a timeout instead of running. When given an adapter with wrong credentials, it checks
//! that the member refuses them as `auth_failed`. Resources are created for a sandbox
//! tenant and deleted again.
#![forbid(unsafe_code)]

mod usable;

use std::time::{Duration, Instant};

use alliance_adapter_api::{
    CallContext, ErrorKind, MemberAdapter, MemberResourceStatus, ResourceRef, ResourceSpec,
};
use alliance_core::{DataClassName, ImageName, Jurisdiction, ResourceType, SizeName, TenantId};
use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sandbox tenant resources are created for.
    pub tenant: TenantId,
    /// A jurisdiction the member serves.
    pub jurisdiction: Jurisdiction,
    /// The services to check (the others are reported as skipped).
    pub services: Vec<ResourceType>,
    /// Why a service the member does not offer was left out, when discovery knows.
    pub not_offered: std::collections::BTreeMap<ResourceType, String>,
    /// A size for instances.
    pub size: Option<SizeName>,
    /// An image for instances.
    pub image: Option<ImageName>,
    /// A second size the member offers, to check a resize (skipped without one).
    pub resize_to: Option<SizeName>,
    /// How long a resource may take to become active or gone.
    pub settle_timeout: Duration,
    /// Deadline of one call.
    pub call_timeout: Duration,
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed, and why.
    Failed(String),
    /// It was not run, and why.
    Skipped(String),
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The service, for per-service checks.
    pub service: Option<ResourceType>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took.
    pub millis: u64,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The adapter kind.
    pub adapter: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Checks passed.
    pub passed: usize,
    /// Checks failed.
    pub failed: usize,
    /// Checks skipped.
    pub skipped: usize,
}

impl Report {
    /// Whether no check failed (and at least one passed).
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }

    /// A readable report, one line per check.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "conformance of a member driven by the `{}` adapter\n",
            self.adapter
        );
        for check in &self.checks {
            let service = check.service.map(|s| format!("[{s}] ")).unwrap_or_default();
            let line = match &check.outcome {
                Outcome::Passed => format!("  PASS  {service}{} ({} ms)", check.name, check.millis),
                Outcome::Failed(why) => format!("  FAIL  {service}{}: {why}", check.name),
                Outcome::Skipped(why) => format!("  SKIP  {service}{}: {why}", check.name),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&format!(
            "{} passed, {} failed, {} skipped\n",
            self.passed, self.failed, self.skipped
        ));
        out
    }
}

struct Run<'a> {
    adapter: &'a dyn MemberAdapter,
    options: &'a Options,
    checks: Vec<Check>,
    progress: &'a mut (dyn FnMut(&Check) + Send + Sync),
}

impl Run<'_> {
    fn ctx(&self, key: &str) -> CallContext {
        CallContext::new(
            Some(self.options.tenant.clone()),
            key,
            self.options.call_timeout,
        )
    }

    fn record(
        &mut self,
        name: &str,
        service: Option<ResourceType>,
        started: Instant,
        outcome: Outcome,
    ) -> bool {
        let passed = outcome == Outcome::Passed;
        let check = Check {
            name: name.to_owned(),
            service,
            outcome,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        (self.progress)(&check);
        self.checks.push(check);
        passed
    }

    async fn service(&mut self, service: ResourceType) {
        let broker_id = format!(
            "conf-{}-{}",
            service.as_str(),
            uuid::Uuid::new_v4().simple()
        );
        let spec = ResourceSpec {
            broker_id: broker_id.clone(),
            resource_type: service,
            name: format!("conformance {service}"),
            tenant: self.options.tenant.clone(),
            jurisdiction: self.options.jurisdiction,
            data_class: DataClassName::parse("standard").unwrap_or_else(|_| unreachable_class()),
            size: if service == ResourceType::Instance {
                self.options.size.clone()
            } else {
                None
            },
            image: if service == ResourceType::Instance {
                self.options.image.clone()
            } else {
                None
            },
            size_gb: if service == ResourceType::Volume {
                Some(1)
            } else {
                None
            },
            access: None,
        };
        let reference = ResourceRef {
            resource_type: service,
            broker_id: broker_id.clone(),
            member_resource_id: None,
        };
        let key = format!("conformance-{broker_id}");

        let started = Instant::now();
        let first = match self.adapter.create(&self.ctx(&key), &spec).await {
            Ok(r) if r.broker_id.as_deref().is_none_or(|b| b == broker_id) => r,
            Ok(r) => {
                self.record(
                    "create",
                    Some(service),
                    started,
                    Outcome::Failed(format!("answered another resource: {:?}", r.broker_id)),
                );
                return;
            }
            Err(e) => {
                self.record(
                    "create",
                    Some(service),
                    started,
                    Outcome::Failed(e.to_string()),
                );
                return;
            }
        };
        self.record("create", Some(service), started, Outcome::Passed);

        let started = Instant::now();
        let outcome = match self.adapter.create(&self.ctx(&key), &spec).await {
            Ok(again) if again.member_resource_id == first.member_resource_id => Outcome::Passed,
            Ok(again) => Outcome::Failed(format!(
                "a retried create made a second resource ({} then {})",
                first.member_resource_id, again.member_resource_id
            )),
            Err(e) => Outcome::Failed(format!("a retried create failed: {e}")),
        };
        self.record(
            "create retried with the same key yields one resource",
            Some(service),
            started,
            outcome,
        );

        let started = Instant::now();
        let outcome = self.settle(&reference, true).await;
        let active = self.record("get until active", Some(service), started, outcome);

        let started = Instant::now();
        let outcome = match self
            .adapter
            .list(&self.ctx(&key), service, Some(&self.options.tenant))
            .await
        {
            Ok(items) => {
                let mine = items
                    .iter()
                    .filter(|r| r.member_resource_id == first.member_resource_id)
                    .count();
                if mine == 1 {
                    Outcome::Passed
                } else {
                    Outcome::Failed(format!("the tenant's list holds the resource {mine} times"))
                }
            }
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.record(
            "list shows it for its tenant",
            Some(service),
            started,
            outcome,
        );

        let started = Instant::now();
        let deleted = match self.adapter.delete(&self.ctx(&key), &reference).await {
            Ok(()) => self.record("delete", Some(service), started, Outcome::Passed),
            Err(e) => self.record(
                "delete",
                Some(service),
                started,
                Outcome::Failed(e.to_string()),
            ),
        };
        if deleted {
            let started = Instant::now();
            let outcome = self.settle(&reference, false).await;
            self.record("get until gone", Some(service), started, outcome);
        }
        let _ = active;

        let unknown = ResourceRef {
            resource_type: service,
            broker_id: format!("conf-unknown-{}", uuid::Uuid::new_v4().simple()),
            member_resource_id: None,
        };
        let started = Instant::now();
        let outcome = match self
            .adapter
            .delete(&self.ctx("conformance-unknown"), &unknown)
            .await
        {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::Failed(format!("deleting an unknown resource must succeed: {e}")),
        };
        self.record(
            "deleting an unknown resource succeeds",
            Some(service),
            started,
            outcome,
        );

        let started = Instant::now();
        let outcome = match self
            .adapter
            .get(&self.ctx("conformance-unknown"), &unknown)
            .await
        {
            Ok(None) => Outcome::Passed,
            Ok(Some(r)) => {
                Outcome::Failed(format!("an unknown id answered {}", r.member_resource_id))
            }
            Err(e) if e.kind == ErrorKind::NotFound => Outcome::Passed,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.record(
            "reading an unknown resource is not found",
            Some(service),
            started,
            outcome,
        );
    }

    async fn settle(&self, reference: &ResourceRef, want_active: bool) -> Outcome {
        let started = Instant::now();
        let deadline = started + self.options.settle_timeout;
        let mut wait = Duration::from_millis(50);
        loop {
            match self
                .adapter
                .get(&self.ctx("conformance-poll"), reference)
                .await
            {
                Ok(Some(r)) if want_active && r.status == MemberResourceStatus::Active => {
                    return Outcome::Passed
                }
                Ok(Some(r)) if r.status == MemberResourceStatus::Error => {
                    return Outcome::Failed(format!(
                        "the member reports an error: {}",
                        r.detail.unwrap_or_default()
                    ))
                }
                Ok(None) if !want_active => return Outcome::Passed,
                // Just created: a member may read behind its writes for a moment.
                Ok(None) if started.elapsed() < UNSEEN_GRACE => {}
                Ok(None) => return Outcome::Failed("the resource vanished".into()),
                Ok(Some(_)) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Outcome::Failed(e.to_string()),
            }
            if Instant::now() >= deadline {
                let what = if want_active { "active" } else { "gone" };
                return Outcome::Failed(format!(
                    "not {what} after {:?}",
                    self.options.settle_timeout
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

/// How long a resource just created may stay unseen at its member before the suite calls
/// it vanished: Cinder under load, like EC2 always, reads behind its writes for a moment.
pub(crate) const UNSEEN_GRACE: Duration = Duration::from_secs(20);

#[expect(clippy::panic, reason = "`standard` is a valid data class name")]
pub(crate) fn unreachable_class() -> DataClassName {
    panic!("`standard` is a valid data class name")
}

/// Runs the suite. `bad_credentials` is the same member reached with wrong credentials, when
/// the caller can build one; `progress` sees each check as it ends.
pub async fn run(
    adapter: &dyn MemberAdapter,
    bad_credentials: Option<&dyn MemberAdapter>,
    options: &Options,
    progress: &mut (dyn FnMut(&Check) + Send + Sync),
) -> Report {
    let mut run = Run {
        adapter,
        options,
        checks: Vec::new(),
        progress,
    };

    let started = Instant::now();
    let outcome = match adapter.health(&run.ctx("conformance-health")).await {
        Ok(()) => Outcome::Passed,
        Err(e) => Outcome::Failed(e.to_string()),
    };
    let healthy = run.record("health answers", None, started, outcome);

    let started = Instant::now();
    let mut expired = run.ctx("conformance-deadline");
    expired.deadline = tokio::time::Instant::now();
    let probe = ResourceRef {
        resource_type: ResourceType::Bucket,
        broker_id: "conf-deadline".into(),
        member_resource_id: None,
    };
    let outcome =
        match tokio::time::timeout(Duration::from_secs(2), adapter.get(&expired, &probe)).await {
            Ok(Err(e)) if e.kind == ErrorKind::Timeout => Outcome::Passed,
            Ok(Err(e)) => Outcome::Failed(format!(
                "an expired deadline answered {:?} instead of a timeout",
                e.kind
            )),
            Ok(Ok(_)) => Outcome::Failed("a call whose deadline had passed still ran".into()),
            Err(_) => Outcome::Failed("a call whose deadline had passed hung".into()),
        };
    run.record("an expired deadline is honoured", None, started, outcome);

    let started = Instant::now();
    let outcome = match bad_credentials {
        None => Outcome::Skipped("no way to build wrong credentials for this adapter".into()),
        Some(bad) => match bad.health(&run.ctx("conformance-auth")).await {
            Err(e) if e.kind == ErrorKind::AuthFailed => Outcome::Passed,
            Err(e) => Outcome::Failed(format!("wrong credentials answered {:?}", e.kind)),
            Ok(()) => Outcome::Failed("the member accepted wrong credentials".into()),
        },
    };
    run.record(
        "wrong credentials are refused as auth_failed",
        None,
        started,
        outcome,
    );

    for service in ResourceType::ALL {
        if !healthy {
            let started = Instant::now();
            run.record(
                "service checks",
                Some(service),
                started,
                Outcome::Skipped("the member is not healthy".into()),
            );
        } else if options.services.contains(&service) {
            run.service(service).await;
        } else {
            let started = Instant::now();
            run.record(
                "service checks",
                Some(service),
                started,
                Outcome::Skipped(
                    options
                        .not_offered
                        .get(&service)
                        .cloned()
                        .unwrap_or_else(|| "the member does not offer this service".into()),
                ),
            );
        }
    }

    if healthy {
        run.capabilities().await;
    }
    let checks = run.checks;
    let count = |f: fn(&Outcome) -> bool| checks.iter().filter(|c| f(&c.outcome)).count();
    Report {
        adapter: adapter.kind().to_owned(),
        passed: count(|o| *o == Outcome::Passed),
        failed: count(|o| matches!(o, Outcome::Failed(_))),
        skipped: count(|o| matches!(o, Outcome::Skipped(_))),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alliance_adapter_sim::{SimAdapter, SimConfig};

    fn options() -> Options {
        Options {
            tenant: TenantId::parse("conformance").expect("tenant"),
            jurisdiction: Jurisdiction::parse("FR").expect("FR"),
            services: ResourceType::ALL.to_vec(),
            not_offered: std::collections::BTreeMap::new(),
            size: SizeName::parse("small").ok(),
            image: ImageName::parse("debian-12").ok(),
            resize_to: SizeName::parse("medium").ok(),
            settle_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn the_sim_member_conforms() {
        let sim = SimAdapter::new(
            "sim-fr",
            SimConfig {
                delay_ms: 20,
                failure_rate: 0.0,
                ..SimConfig::default()
            },
        );
        let report = run(&sim, None, &options(), &mut |_| {}).await;
        assert!(report.ok(), "{}", report.to_text());
        assert_eq!(report.failed, 0);
        assert_eq!(
            report.skipped, 1,
            "only the credentials check is skipped for sim"
        );
        for check in [
            "an instance gets its key, user data and rules, and reports addresses",
            "stop, start and reboot settle, each once per key",
            "resize settles at the new size",
            "a volume attaches to an instance and detaches",
            "signed URLs store, return and delete an object over HTTP",
        ] {
            assert!(
                report
                    .checks
                    .iter()
                    .any(|c| c.name == check && c.outcome == Outcome::Passed),
                "{check}: {}",
                report.to_text()
            );
        }
    }

    #[tokio::test]
    async fn a_failing_member_does_not_conform() {
        let sim = SimAdapter::new(
            "sim-fr",
            SimConfig {
                delay_ms: 0,
                failure_rate: 1.0,
                ..SimConfig::default()
            },
        );
        let report = run(&sim, None, &options(), &mut |_| {}).await;
        assert!(!report.ok());
        assert!(
            report.to_text().contains("FAIL  health answers"),
            "{}",
            report.to_text()
        );
    }
}
