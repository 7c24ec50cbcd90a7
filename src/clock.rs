//! Wall-clock time as the protocol counts it: unix seconds and milliseconds.
//!
//! Decisions never read the clock themselves: the loops that drive them read it here (or
//! from the chain, see `chain::DealsChain::now`) and pass the value in, so that every
//! timeout can be tested with a number.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}
