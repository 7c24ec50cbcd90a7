//! Request limits: body sizes, a token bucket per client address (taken before anything
//! else is done for a request) and one per account (taken only once the account's
//! signature is verified, so that nobody can spend another account's requests).
//! The buckets are governor's GCRA.

use super::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

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
    /// Requests per second per client address (sustained), signed or not.
    pub ip_rate_per_sec: f64,
    /// Requests a client address may make at once after a quiet spell.
    pub ip_rate_burst: f64,
}

/// A token bucket per key (an account, or a client address).
pub struct RateLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    per_sec: f64,
    who: &'static str,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for RateLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("per_sec", &self.per_sec).field("who", &self.who).finish()
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Buckets refilling at `per_sec` up to `burst`; `who` names the key in refusals
    /// ("account", "address").
    pub fn new(per_sec: f64, burst: f64, who: &'static str) -> Self {
        let per_sec = per_sec.max(1e-6);
        let burst = NonZeroU32::new(burst.clamp(1.0, u32::MAX as f64) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_sec))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self { limiter: DefaultKeyedRateLimiter::dashmap(quota), per_sec, who }
    }

    /// Takes a token for `key`, or refuses with 429 and the seconds to wait.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(self.who, self.per_sec, wait)
        })
    }

    /// Forgets keys whose bucket is full again (they lose nothing): memory stays bounded by
    /// the keys active in the last burst period.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// The bucket a client address draws from: an IPv4 address, or an IPv6 /64 (one host
/// usually holds a whole /64, so single IPv6 addresses cost an attacker nothing).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Middleware: every request takes a token of its client address before any work is done
/// for it (a signature check, a lock, a body read). Requests without a peer address (an
/// in-process router) are not limited.
pub async fn per_client(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        if let Err(e) = state.0.client_rate.check(&client_key(peer.ip())) {
            return e.into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    #[test]
    fn a_burst_then_refusal_per_key_with_the_wait() {
        let limiter = RateLimiter::new(0.01, 3.0, "account");
        let a = Address::repeat_byte(1);
        for _ in 0..3 {
            limiter.check(&a).unwrap();
        }
        let refused = limiter.check(&a).unwrap_err();
        assert_eq!(refused.code, "rate_limited");
        assert!((90..=100).contains(&refused.retry_after.unwrap()), "{refused:?}");
        limiter.check(&Address::repeat_byte(2)).unwrap();
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn ipv6_hosts_share_their_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
