//! Delays between retries: exponential, with jitter, capped, endless (backon's
//! `ExponentialBuilder`), and reset after a success. Every loop that retries a failing step
//! (a follower, a deal step, a purchase) waits through one of these instead of a fixed
//! sleep, so an outage is not met with a hot loop.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// A retry schedule from `min` doubling to `max`.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    current: ExponentialBackoff,
    failures: u32,
}

impl Backoff {
    /// Delays from `min` (with jitter up to the delay itself), doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder =
            ExponentialBuilder::default().with_min_delay(min).with_max_delay(max).with_jitter().without_max_times();
        Self { current: builder.build(), builder, failures: 0 }
    }

    /// The delay before the next attempt after a failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.current.next().unwrap_or_else(|| Duration::from_secs(60))
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.current = self.builder.build();
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)), "capped (plus jitter): {delays:?}");
        assert!(delays[9] >= Duration::from_secs(2), "reaches the cap: {delays:?}");
        assert_eq!(b.failures(), 10);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }
}
