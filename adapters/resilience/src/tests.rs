//! The rules of the resilience layer, with paused time and a scripted member.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

#[derive(Debug, Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<(), AdapterError>>>,
    calls: AtomicU32,
    hang: bool,
}

impl Scripted {
    fn new(answers: Vec<Result<(), AdapterError>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into()),
            calls: AtomicU32::new(0),
            hang: false,
        })
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl MemberAdapter for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    async fn create(
        &self,
        _: &CallContext,
        _: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        Err(AdapterError::invalid("not scripted"))
    }
    async fn get(
        &self,
        _: &CallContext,
        _: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        Err(AdapterError::invalid("not scripted"))
    }
    async fn delete(&self, _: &CallContext, _: &ResourceRef) -> Result<(), AdapterError> {
        Err(AdapterError::invalid("not scripted"))
    }
    async fn list(
        &self,
        _: &CallContext,
        _: ResourceType,
        _: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        Err(AdapterError::invalid("not scripted"))
    }
    async fn health(&self, _: &CallContext) -> Result<(), AdapterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        self.answers
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or_else(|| Err(AdapterError::unavailable("down")))
    }
}

fn ctx() -> CallContext {
    CallContext::new(None, "k", Duration::from_secs(30))
}

fn policy() -> Policy {
    Policy {
        budget_min_per_second: 10.0,
        ..Policy::default()
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_until_success() {
    let member = Scripted::new(vec![
        Err(AdapterError::unavailable("blip")),
        Err(AdapterError::unavailable("blip")),
        Ok(()),
    ]);
    let resilient = Resilient::new(member.clone(), "m", policy());
    resilient
        .health(&ctx())
        .await
        .expect("third attempt succeeds");
    assert_eq!(member.calls(), 3);
    assert_eq!(
        resilient.observed_health(),
        MemberHealth::Degraded,
        "recent failures show"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(resilient.observed_health(), MemberHealth::Up);
}

#[tokio::test(start_paused = true)]
async fn refusals_are_never_retried() {
    let member = Scripted::new(vec![Err(AdapterError::invalid("no")), Ok(())]);
    let resilient = Resilient::new(member.clone(), "m", policy());
    let err = resilient.health(&ctx()).await.expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(member.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let limited = AdapterError::new(
        ErrorKind::RateLimited,
        ErrorSource::Member,
        Retry::Safe,
        "slow down",
    )
    .with_retry_after(Duration::from_millis(1500));
    let member = Scripted::new(vec![Err(limited), Ok(())]);
    let resilient = Resilient::new(member.clone(), "m", policy());
    let started = Instant::now();
    resilient.health(&ctx()).await.expect("after waiting");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_member_times_out() {
    let member = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let resilient = Resilient::new(
        member.clone(),
        "m",
        Policy {
            call_timeout: Duration::from_secs(1),
            max_attempts: 1,
            ..policy()
        },
    );
    let started = Instant::now();
    let err = resilient.health(&ctx()).await.expect_err("times out");
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_fails_fast_then_probes_and_closes() {
    let member = Scripted::new(vec![Err(AdapterError::unavailable("down")); 3]);
    let p = Policy {
        max_attempts: 1,
        failure_threshold: 3,
        cooldown: Duration::from_secs(5),
        ..policy()
    };
    let resilient = Resilient::new(member.clone(), "m", p);
    for _ in 0..3 {
        resilient.health(&ctx()).await.expect_err("down");
    }
    assert_eq!(resilient.observed_health(), MemberHealth::Down);
    let fast = resilient.health(&ctx()).await.expect_err("open");
    assert_eq!(
        member.calls(),
        3,
        "an open breaker does not call the member"
    );
    assert!(fast.retry_after.is_some());
    tokio::time::advance(Duration::from_secs(6)).await;
    member.answers.lock().expect("lock").push_back(Ok(()));
    resilient.health(&ctx()).await.expect("the probe succeeds");
    assert_eq!(member.calls(), 4);
    assert_eq!(
        resilient.observed_health(),
        MemberHealth::Degraded,
        "recent failures still show"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(resilient.observed_health(), MemberHealth::Up);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_longer() {
    let member = Scripted::new(Vec::new());
    let p = Policy {
        max_attempts: 1,
        failure_threshold: 1,
        cooldown: Duration::from_secs(2),
        ..policy()
    };
    let resilient = Resilient::new(member.clone(), "m", p);
    resilient.health(&ctx()).await.expect_err("opens");
    tokio::time::advance(Duration::from_secs(3)).await;
    resilient.health(&ctx()).await.expect_err("probe fails");
    tokio::time::advance(Duration::from_secs(3)).await;
    resilient
        .health(&ctx())
        .await
        .expect_err("still open: the cooldown doubled");
    assert_eq!(member.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_retry_budget_bounds_extra_load() {
    let member = Scripted::new(Vec::new());
    let p = Policy {
        max_attempts: 10,
        failure_threshold: 10_000,
        budget_ratio: 0.2,
        budget_min_per_second: 0.0,
        ..Policy::default()
    };
    let resilient = Resilient::new(member.clone(), "m", p);
    for _ in 0..50 {
        resilient
            .health(&CallContext::new(None, "k", Duration::from_secs(600)))
            .await
            .expect_err("down");
    }
    let calls = member.calls();
    assert!(
        calls <= 50 + 50 / 5,
        "{calls} calls for 50 requests: retries exceeded 20 %"
    );
    assert!(calls > 50, "some retries were allowed");
}
