//! Request limits: body sizes, a token bucket per client address (taken before anything
//! else is done for a request) and one per account (taken only once the account's
//! signature is verified, so that nobody can spend another account's requests).
//! The buckets are governor's GCRA. And the room result bundles take on disk
//! ([`ResultSpace`]).

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
    /// Most bytes of result bundles kept and arriving, in all.
    pub max_stored_result_bytes: u64,
    /// Most open event streams, in all.
    pub max_subscriptions: usize,
    /// Most open event streams from one client address.
    pub max_subscriptions_per_address: usize,
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

/// The disk result bundles take, kept and arriving, against a quota; and which deals have
/// an upload under way (one at a time per deal). Room is reserved before a body streams
/// (THREATS V4).
#[derive(Debug)]
pub struct ResultSpace {
    quota: u64,
    inner: std::sync::Mutex<SpaceInner>,
}

#[derive(Debug, Default)]
struct SpaceInner {
    stored: u64,
    arriving: std::collections::HashMap<alloy::primitives::B256, u64>,
}

impl ResultSpace {
    /// `stored` bytes kept already, at most `quota` in all.
    pub fn new(quota: u64, stored: u64) -> Self {
        Self { quota, inner: std::sync::Mutex::new(SpaceInner { stored, arriving: Default::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpaceInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `bytes` for deal `deal`'s upload, or refuses: another upload of the deal is
    /// under way (409), or the quota would be passed (507).
    pub fn reserve(&self, deal: alloy::primitives::B256, bytes: u64) -> Result<Reservation<'_>, ApiError> {
        let mut inner = self.lock();
        if inner.arriving.contains_key(&deal) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "upload_in_progress",
                format!("another upload of deal {deal}'s result is under way: wait for its answer"),
            ));
        }
        let used = inner.stored.saturating_add(inner.arriving.values().sum::<u64>());
        if used.saturating_add(bytes) > self.quota {
            return Err(ApiError::new(
                axum::http::StatusCode::INSUFFICIENT_STORAGE,
                "results_full",
                format!(
                    "the solver holds {used} of its {} bytes of results and cannot take {bytes} more: try later",
                    self.quota
                ),
            ));
        }
        inner.arriving.insert(deal, bytes);
        Ok(Reservation { space: self, deal, kept: None })
    }

    /// `bytes` of kept bundles were deleted.
    pub fn release(&self, bytes: u64) {
        let mut inner = self.lock();
        inner.stored = inner.stored.saturating_sub(bytes);
    }

    /// Bytes kept and reserved.
    pub fn used(&self) -> u64 {
        let inner = self.lock();
        inner.stored.saturating_add(inner.arriving.values().sum::<u64>())
    }
}

/// Room for one upload; given back when dropped, unless [`Reservation::keep`] counted the
/// bytes that stayed.
#[derive(Debug)]
pub struct Reservation<'a> {
    space: &'a ResultSpace,
    deal: alloy::primitives::B256,
    kept: Option<u64>,
}

impl Reservation<'_> {
    /// The upload is kept, taking `bytes` of new disk (0 when the same bundle was held).
    pub fn keep(mut self, bytes: u64) {
        self.kept = Some(bytes);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut inner = self.space.lock();
        inner.arriving.remove(&self.deal);
        inner.stored = inner.stored.saturating_add(self.kept.unwrap_or(0));
    }
}

/// At start: removes partial uploads (`incoming/`) and bundles no result record names
/// (an upload cut between its rename and its record), and returns the bytes kept.
pub fn sweep_results(
    dir: &std::path::Path,
    held: &std::collections::HashSet<alloy::primitives::B256>,
) -> std::io::Result<u64> {
    let incoming = dir.join("incoming");
    let (mut partial, mut orphans, mut kept) = (0usize, 0usize, 0u64);
    if incoming.exists() {
        for entry in std::fs::read_dir(&incoming)? {
            std::fs::remove_file(entry?.path())?;
            partial += 1;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(hex) = name.strip_suffix(".tar") else { continue };
        let named = format!("0x{hex}").parse::<alloy::primitives::B256>().ok();
        if named.is_some_and(|sha| held.contains(&sha)) {
            kept += entry.metadata()?.len();
        } else if entry.file_type()?.is_file() {
            std::fs::remove_file(&path)?;
            orphans += 1;
        }
    }
    if partial + orphans > 0 {
        tracing::info!(partial, orphans, "removed result files no record names");
    }
    Ok(kept)
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

#[cfg(test)]
mod space_tests {
    use super::*;
    use alloy::primitives::B256;

    #[test]
    fn room_is_reserved_per_deal_and_given_back_unless_kept() {
        let space = ResultSpace::new(100, 10);
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let first = space.reserve(a, 60).unwrap();
        assert_eq!(space.reserve(a, 1).unwrap_err().code, "upload_in_progress");
        assert_eq!(space.reserve(b, 31).unwrap_err().code, "results_full");
        drop(first);
        assert_eq!(space.used(), 10, "given back");
        space.reserve(b, 90).unwrap().keep(40);
        assert_eq!(space.used(), 50, "only what stayed is counted");
    }

    #[test]
    fn the_sweep_keeps_held_bundles_only() {
        let dir = tempfile::tempdir().unwrap();
        let held = B256::repeat_byte(0xaa);
        std::fs::create_dir(dir.path().join("incoming")).unwrap();
        std::fs::write(dir.path().join("incoming/x.part"), b"half").unwrap();
        std::fs::write(dir.path().join(format!("{}.tar", hex::encode(held))), b"kept").unwrap();
        std::fs::write(dir.path().join(format!("{}.tar", hex::encode(B256::repeat_byte(0xbb)))), b"orphan").unwrap();
        let kept = sweep_results(dir.path(), &[held].into()).unwrap();
        assert_eq!(kept, 4);
        let mut left: Vec<_> =
            walk(dir.path()).into_iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
        left.sort();
        assert_eq!(left, [format!("{}.tar", hex::encode(held)), "incoming".to_string()]);
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }
}
