//! The solver's configuration, resolved from the settings and its command-line overrides
//! (pure: unit-tested below). Who the solver is (its address, chain and contract) comes
//! from its account and deployment at start, in [`SolverConfig::core`].

use super::api::ApiLimits;
use super::core::CoreConfig;
use crate::config::Settings;
use alloy::primitives::Address;
use std::time::Duration;

/// What `dcn solver` flags override; `None` keeps the setting.
#[derive(Debug, Clone, Default)]
pub struct SolverOverrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--fault` (fault-injection builds only).
    pub fault: Option<super::core::Fault>,
}

/// Everything the solver takes from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SolverConfig {
    /// Address and port to bind.
    pub listen: String,
    /// URL clients reach it at, registered on chain; default `http://<bound address>`.
    pub public_url: Option<String>,
    /// Body sizes and rates.
    pub limits: ApiLimits,
    /// Furthest accepted offer expiry, seconds ahead.
    pub offer_max_ahead_secs: u64,
    /// Furthest accepted request-signature expiry, seconds ahead.
    pub request_max_ahead_secs: u64,
    /// Most open offers per account.
    pub max_open_offers: usize,
    /// Most open offers from everyone.
    pub max_open_offers_total: usize,
    /// Time a provider has to sign a proposed deal, seconds.
    pub sign_timeout_secs: u64,
    /// Time a job creator has to create a signed deal on chain, seconds.
    pub create_timeout_secs: u64,
    /// How long a settled deal's result is kept, seconds.
    pub result_retention_secs: u64,
    /// How often the chain is read for deal states.
    pub chain_poll: Duration,
    /// How long a free escrow read is used (THREATS V2).
    pub escrow_ttl: Duration,
    /// Test-only misbehaviour.
    pub fault: Option<super::core::Fault>,
}

impl SolverConfig {
    /// The configuration from `settings` with `overrides` on top.
    pub fn resolve(settings: &Settings, overrides: &SolverOverrides) -> Self {
        let s = &settings.solver;
        Self {
            listen: overrides.listen.clone().unwrap_or_else(|| s.listen.clone()),
            public_url: overrides.public_url.clone().or_else(|| s.public_url.clone()),
            limits: ApiLimits {
                max_body_bytes: s.max_body_bytes,
                max_result_bytes: s.max_result_mb.saturating_mul(1 << 20),
                max_stored_result_bytes: s.max_stored_results_mb.saturating_mul(1 << 20),
                max_subscriptions: s.max_subscriptions,
                max_subscriptions_per_address: s.max_subscriptions_per_address,
                rate_per_sec: s.rate_per_sec,
                rate_burst: s.rate_burst,
                ip_rate_per_sec: s.ip_rate_per_sec,
                ip_rate_burst: s.ip_rate_burst,
            },
            offer_max_ahead_secs: s.offer_max_ahead_secs,
            request_max_ahead_secs: s.request_max_ahead_secs,
            max_open_offers: s.max_open_offers,
            max_open_offers_total: s.max_open_offers_total,
            sign_timeout_secs: s.sign_timeout_secs,
            create_timeout_secs: s.create_timeout_secs,
            result_retention_secs: s.result_retention_hours.saturating_mul(3600),
            chain_poll: Duration::from_millis(s.chain_poll_ms.max(20)),
            escrow_ttl: Duration::from_secs(s.escrow_cache_secs.max(1)),
            fault: overrides.fault,
        }
    }

    /// The core's policy for the solver `solver` of the deployment whose `DcnDeals` is
    /// `deals_contract` on `chain_id`.
    pub fn core(&self, solver: Address, chain_id: u64, deals_contract: Address, min_mediators: usize) -> CoreConfig {
        CoreConfig {
            solver,
            chain_id,
            deals_contract,
            offer_max_ahead_secs: self.offer_max_ahead_secs,
            request_max_ahead_secs: self.request_max_ahead_secs,
            max_open_offers: self.max_open_offers,
            max_open_offers_total: self.max_open_offers_total,
            sign_timeout_secs: self.sign_timeout_secs,
            create_timeout_secs: self.create_timeout_secs,
            result_retention_secs: self.result_retention_secs,
            min_mediators,
            fault: self.fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_settings_and_units_convert() {
        let s =
            Settings::from_test_env(&[("SERVER_URL", "https://solver.example"), ("DCN_SOLVER__MAX_RESULT_MB", "2")]);
        let c = SolverConfig::resolve(&s, &SolverOverrides::default());
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.public_url.as_deref(), Some("https://solver.example"));
        assert_eq!(c.limits.max_result_bytes, 2 << 20);
        assert_eq!(c.chain_poll, Duration::from_millis(1000));
        let o =
            SolverOverrides { listen: Some("0.0.0.0:9000".into()), public_url: Some("http://x".into()), fault: None };
        let c = SolverConfig::resolve(&s, &o);
        assert_eq!((c.listen.as_str(), c.public_url.as_deref()), ("0.0.0.0:9000", Some("http://x")));
        let core = c.core(Address::repeat_byte(1), 1337, Address::repeat_byte(2), 3);
        assert_eq!((core.sign_timeout_secs, core.create_timeout_secs, core.chain_id), (60, 300, 1337));
    }
}
