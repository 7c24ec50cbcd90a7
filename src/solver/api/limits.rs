//! Request limits: body sizes and a token bucket per account.

use super::ApiError;
use alloy::primitives::Address;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The API's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiLimits {
    /// Largest JSON body, bytes.
    pub max_body_bytes: usize,
    /// Largest result bundle, bytes.
    pub max_result_bytes: u64,
    /// Signed requests per second per account (sustained).
    pub rate_per_sec: f64,
    /// Signed requests an account may make at once after a quiet spell.
    pub rate_burst: f64,
}

/// A token bucket per account.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<Address, (f64, Instant)>>,
}

impl RateLimiter {
    /// Buckets refilling at `per_sec` up to `burst`.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self { per_sec, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `account`, or refuses with 429.
    pub fn check(&self, account: Address) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget accounts whose bucket is full again: they lose nothing.
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst);
        }
        let (tokens, at) = buckets.entry(account).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(ApiError::rate_limited(self.per_sec));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_per_account() {
        let limiter = RateLimiter::new(0.001, 3.0);
        let a = Address::repeat_byte(1);
        for _ in 0..3 {
            limiter.check(a).unwrap();
        }
        assert_eq!(limiter.check(a).unwrap_err().code, "rate_limited");
        limiter.check(Address::repeat_byte(2)).unwrap();
    }
}
