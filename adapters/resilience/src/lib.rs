//! Resilience, written once and wrapped around every adapter: [`Resilient`] is itself a
//! [`MemberAdapter`], so the engine, the registry and the conformance suite use it like any
//! other.
//!
//! - **Timeout** per call: the call's own deadline, never longer than `call_timeout`.
//! - **Retries**: bounded (`max_attempts`), exponential backoff with full jitter, only for
//!   errors that say a retry is safe (`retry != never`) and are transient; `Retry-After` is
//!   honoured; never past the call's deadline.
//! - **Retry budget**: retries may add at most `budget_ratio` (20 %) of the calls of the last
//!   10 s, plus a floor of `budget_min_per_second`, so a struggling member is not hammered
//!   (the Linkerd/Envoy model).
//! - **Circuit breaker** per member: `failure_threshold` consecutive failures open it; while
//!   open, calls fail fast as `unavailable` with `Retry-After`; after the cooldown one probe
//!   is let through (half-open); success closes it, failure reopens it with a longer
//!   cooldown (doubling, capped).
//! - **Health** is derived from it: open → down; recent failures → degraded; else up.
//!
//! Time is `tokio::time`, so every rule is tested with paused time.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberAdapter, MemberResource, ResourceRef,
    ResourceSpec, Retry,
};
use alliance_core::{MemberHealth, ResourceType, TenantId};
use rand::Rng;
use tokio::time::Instant;

/// The knobs, with Envoy/Linkerd-like defaults.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Longest one attempt may take.
    pub call_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per retry.
    pub base_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Retries allowed per call in the window.
    pub budget_ratio: f64,
    /// Retries per second always allowed.
    pub budget_min_per_second: f64,
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// First open period.
    pub cooldown: Duration,
    /// Longest open period.
    pub max_cooldown: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(20),
            max_attempts: 3,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            budget_ratio: 0.2,
            budget_min_per_second: 1.0,
            failure_threshold: 5,
            cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

/// Budget window.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { probing: bool, cooldown: Duration },
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    calls: VecDeque<Instant>,
    retries: VecDeque<Instant>,
    last_failure: Option<Instant>,
}

/// An adapter with timeouts, retries, a retry budget and a circuit breaker.
#[derive(Debug)]
pub struct Resilient {
    inner: Arc<dyn MemberAdapter>,
    member: String,
    policy: Policy,
    state: Mutex<State>,
}

fn open_error(member: &str, wait: Duration) -> AdapterError {
    AdapterError::new(
        ErrorKind::Unavailable,
        ErrorSource::Broker,
        Retry::WithIdempotencyKey,
        format!("member {member} is failing; its circuit breaker is open"),
    )
    .with_retry_after(wait.max(Duration::from_secs(1)))
}

impl Resilient {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn MemberAdapter>, member: impl Into<String>, policy: Policy) -> Self {
        Self {
            inner,
            member: member.into(),
            policy,
            state: Mutex::new(State {
                breaker: Breaker::Closed { failures: 0 },
                calls: VecDeque::new(),
                retries: VecDeque::new(),
                last_failure: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The health the breaker observes.
    pub fn observed_health(&self) -> MemberHealth {
        let state = self.lock();
        match state.breaker {
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => MemberHealth::Down,
            Breaker::Closed { failures } if failures > 0 => MemberHealth::Degraded,
            Breaker::Closed { .. } if state.last_failure.is_some_and(|t| t.elapsed() < WINDOW) => {
                MemberHealth::Degraded
            }
            Breaker::Closed { .. } => MemberHealth::Up,
        }
    }

    /// The breaker's state by name.
    pub fn breaker_state(&self) -> &'static str {
        match self.lock().breaker {
            Breaker::Closed { .. } => "closed",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen { .. } => "half-open",
        }
    }

    /// May a call go through? Fails fast while open; lets one probe through half-open.
    fn admit(&self) -> Result<(), AdapterError> {
        let now = Instant::now();
        let mut state = self.lock();
        match state.breaker {
            Breaker::Closed { .. } => Ok(()),
            Breaker::Open { until, cooldown } if now >= until => {
                state.breaker = Breaker::HalfOpen {
                    probing: true,
                    cooldown,
                };
                tracing::info!(member.id = %self.member, "circuit breaker half-open: probing");
                Ok(())
            }
            Breaker::Open { until, .. } => Err(open_error(&self.member, until - now)),
            Breaker::HalfOpen {
                probing: false,
                cooldown,
            } => {
                state.breaker = Breaker::HalfOpen {
                    probing: true,
                    cooldown,
                };
                Ok(())
            }
            Breaker::HalfOpen { probing: true, .. } => {
                Err(open_error(&self.member, self.policy.cooldown))
            }
        }
    }

    fn record(&self, failed: bool) {
        let now = Instant::now();
        let mut state = self.lock();
        if failed {
            state.last_failure = Some(now);
        }
        let next = match (state.breaker, failed) {
            (_, false) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, true)
                if failures + 1 >= self.policy.failure_threshold =>
            {
                Breaker::Open {
                    until: now + self.policy.cooldown,
                    cooldown: self.policy.cooldown,
                }
            }
            (Breaker::Closed { failures }, true) => Breaker::Closed {
                failures: failures + 1,
            },
            (Breaker::HalfOpen { cooldown, .. } | Breaker::Open { cooldown, .. }, true) => {
                let longer = (cooldown * 2).min(self.policy.max_cooldown);
                Breaker::Open {
                    until: now + longer,
                    cooldown: longer,
                }
            }
        };
        if matches!(next, Breaker::Open { .. }) && !matches!(state.breaker, Breaker::Open { .. }) {
            tracing::warn!(member.id = %self.member, "circuit breaker opened");
            metrics::counter!("alliance_breaker_opened_total", "member" => self.member.clone())
                .increment(1);
        }
        if matches!(next, Breaker::Closed { .. })
            && !matches!(state.breaker, Breaker::Closed { .. })
        {
            tracing::info!(member.id = %self.member, "circuit breaker closed");
        }
        state.breaker = next;
    }

    /// Counts a call and says whether a retry fits in the budget (and counts it).
    fn take_retry(&self) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        while state
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            state.calls.pop_front();
        }
        while state
            .retries
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            state.retries.pop_front();
        }
        let allowed = self.policy.budget_min_per_second * WINDOW.as_secs_f64()
            + self.policy.budget_ratio * state.calls.len() as f64;
        if (state.retries.len() as f64) < allowed {
            state.retries.push_back(now);
            true
        } else {
            false
        }
    }

    fn count_call(&self) {
        let mut state = self.lock();
        state.calls.push_back(Instant::now());
        if state.calls.len() > 100_000 {
            state.calls.pop_front();
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self
            .policy
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.policy.max_backoff);
        let jittered = cap.mul_f64(rand::rng().random_range(0.0..=1.0));
        jittered.max(retry_after.unwrap_or_default())
    }

    async fn call<T, F, Fut>(
        &self,
        ctx: &CallContext,
        name: &'static str,
        op: F,
    ) -> Result<T, AdapterError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AdapterError>>,
    {
        let mut attempt = 0u32;
        loop {
            ctx.check_deadline()?;
            self.admit()?;
            if attempt == 0 {
                // The budget is a share of calls, not of attempts.
                self.count_call();
            }
            let limit = ctx.remaining().min(self.policy.call_timeout);
            let result = match tokio::time::timeout(limit, op()).await {
                Ok(result) => result,
                Err(_) => Err(AdapterError::new(
                    ErrorKind::Timeout,
                    ErrorSource::Network,
                    Retry::WithIdempotencyKey,
                    format!("member {} did not answer {name} in {limit:?}", self.member),
                )),
            };
            let failed = matches!(&result, Err(e) if e.is_transient());
            self.record(failed);
            metrics::counter!("alliance_member_calls_total", "member" => self.member.clone(), "call" => name, "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
            let error = match result {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            attempt += 1;
            let retryable = error.is_transient() && attempt < self.policy.max_attempts;
            if !retryable {
                return Err(error);
            }
            let wait = self.backoff(attempt, error.retry_after);
            if wait >= ctx.remaining() || !self.take_retry() {
                return Err(error);
            }
            metrics::counter!("alliance_member_retries_total", "member" => self.member.clone(), "call" => name).increment(1);
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait::async_trait]
impl MemberAdapter for Resilient {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        // Safe to repeat: creates are idempotent by broker id (the adapter's contract).
        self.call(ctx, "create", || self.inner.create(ctx, spec))
            .await
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        self.call(ctx, "get", || self.inner.get(ctx, resource))
            .await
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        self.call(ctx, "delete", || self.inner.delete(ctx, resource))
            .await
    }

    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        self.call(ctx, "list", || self.inner.list(ctx, resource_type, tenant))
            .await
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        self.call(ctx, "health", || self.inner.health(ctx)).await
    }

    async fn statement(
        &self,
        ctx: &CallContext,
        period: &str,
    ) -> Result<Option<String>, AdapterError> {
        self.call(ctx, "statement", || self.inner.statement(ctx, period))
            .await
    }

    fn observed_health(&self) -> Option<MemberHealth> {
        Some(Resilient::observed_health(self))
    }

    fn breaker_state(&self) -> Option<&'static str> {
        Some(Resilient::breaker_state(self))
    }

    fn capabilities(&self) -> alliance_adapter_api::Capabilities {
        self.inner.capabilities()
    }

    async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &alliance_adapter_api::InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        // Safe to repeat: an action is idempotent by its key (the adapter's contract).
        self.call(ctx, "act", || self.inner.act(ctx, instance, action))
            .await
    }

    async fn attach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        self.call(ctx, "attach", || self.inner.attach(ctx, volume, instance))
            .await
    }

    async fn detach(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        self.call(ctx, "detach", || self.inner.detach(ctx, volume))
            .await
    }

    async fn object_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &alliance_adapter_api::ObjectUrlRequest,
    ) -> Result<alliance_adapter_api::SignedUrl, AdapterError> {
        self.call(ctx, "object_url", || {
            self.inner.object_url(ctx, bucket, request)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
