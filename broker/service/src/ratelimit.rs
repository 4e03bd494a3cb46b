//! Per-tenant (or per-subject) request rate limiting: a token bucket per key, refilled at
//! `rate_limit_per_second` with a burst of the same size. A refused request is answered
//! 429 `request.rate_limited` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode};

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per key; 0 disables it.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for the principal's tenant (or subject), or refuses with 429.
    pub fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let key = match &principal.tenant {
            Some(t) => format!("tenant:{t}"),
            None => format!("subject:{}:{}", principal.issuer, principal.subject),
        };
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(60));
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.per_second);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.per_second;
            Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many requests for this tenant; slow down",
            )
            .with_retry_after(Duration::from_secs_f64(wait)))
        }
    }
}
