//! The provider's configuration, resolved from the settings and its command-line overrides
//! (pure: unit-tested below). What depends on the machine (slot sizes derived from its
//! cores and RAM) and on the chain (the registered mediators) is settled at start, in
//! [`super::Offering`].

use super::terms::Limits;
use crate::config::{InvalidSetting, Settings};
use crate::units::parse_amount;
use alloy::primitives::{Address, U256};
use std::time::Duration;

/// What `dcn provider` flags override; `None` keeps the setting.
#[derive(Debug, Clone, Default)]
pub struct ProviderOverrides {
    /// `--offer-cpu`.
    pub offer_cpu: Option<u64>,
    /// `--offer-ram`.
    pub offer_ram_mb: Option<u64>,
    /// `--offer-gpu`.
    pub offer_gpu: Option<u32>,
    /// `--offer-count`.
    pub offer_count: Option<u32>,
    /// `--price`.
    pub price: Option<String>,
    /// `--collateral`.
    pub collateral: Option<String>,
    /// `--modules`.
    pub modules: Option<Vec<String>>,
    /// `--mediators`.
    pub mediators: Option<Vec<Address>>,
    /// `--solver`.
    pub solver: Option<String>,
    /// Test-only: misbehave this way.
    pub fault: Option<Fault>,
}

/// Test-only misbehaviour of a provider (`--fault`, in builds with the `fault-injection`
/// feature): a cheater for the challenge and hostile tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Runs the job, then reports a result with an extra line.
    WrongResult,
    /// Never runs the job: reports exit code 137 and no output.
    SkipJob,
}

/// Everything the provider takes from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Milli-CPU per slot; 0: the machine's share.
    pub offer_cpu: u64,
    /// RAM per slot in MB; 0: the machine's share.
    pub offer_ram_mb: u64,
    /// GPUs per slot.
    pub offer_gpu: u32,
    /// Slots (jobs at once), at least 1.
    pub slots: u32,
    /// Price per job, token units.
    pub price: U256,
    /// Collateral per deal, token units.
    pub collateral: U256,
    /// Module allow-list (empty: any).
    pub modules: Vec<String>,
    /// Trusted mediators as configured (empty: the ones the registry's owner approved).
    pub mediators: Vec<Address>,
    /// The solver as configured (URL or address; `None`: the registry's).
    pub solver: Option<String>,
    /// Lifetime of a posted offer, seconds.
    pub offer_ttl_secs: u64,
    /// Limits on the deal terms it signs.
    pub limits: Limits,
    /// How often the chain is read for a deal's state.
    pub poll: Duration,
    /// Test-only misbehaviour.
    pub fault: Option<Fault>,
    /// Where this provider's own copies of modules come from (`modules.dir`, then the
    /// built-ins), to check a job against the module it claims to be.
    pub resolver: crate::module::resolve::Resolver,
}

impl ProviderConfig {
    /// The configuration from `settings` with `overrides` on top.
    pub fn resolve(settings: &Settings, overrides: &ProviderOverrides) -> Result<Self, InvalidSetting> {
        let p = &settings.provider;
        let slots = overrides.offer_count.unwrap_or(p.offer_count);
        if slots == 0 {
            return Err(InvalidSetting::new("provider.offer_count", "a provider offers at least 1 slot"));
        }
        let price = parse_amount(overrides.price.as_deref().unwrap_or(&p.price), "provider.price")?;
        let collateral = parse_amount(overrides.collateral.as_deref().unwrap_or(&p.collateral), "provider.collateral")?;
        Ok(Self {
            offer_cpu: overrides.offer_cpu.unwrap_or(p.offer_cpu),
            offer_ram_mb: overrides.offer_ram_mb.unwrap_or(p.offer_ram_mb),
            offer_gpu: overrides.offer_gpu.unwrap_or(p.offer_gpu),
            slots,
            price,
            collateral,
            modules: overrides.modules.clone().unwrap_or_else(|| p.modules.clone()),
            mediators: overrides.mediators.clone().unwrap_or_else(|| settings.services.mediators.clone()),
            solver: overrides.solver.clone().or_else(|| settings.services.solver.clone()),
            offer_ttl_secs: p.offer_ttl_secs,
            limits: Limits {
                allow_network: settings.executor.allow_network,
                min_result_margin_secs: p.min_result_margin_secs,
                max_judge_timeout_secs: p.max_judge_timeout_secs,
                max_mediation_timeout_secs: p.max_mediation_timeout_secs,
                max_create_window_secs: p.max_create_window_secs,
                max_job_timeout_secs: p.max_job_timeout_secs,
                max_spec_bytes: p.max_spec_bytes,
                max_output_bytes: p.max_output_mb.saturating_mul(1 << 20),
                // The network's rules, read from the chain when the provider starts.
                min_mediators: 1,
                min_mediation_fee: alloy::primitives::U256::ZERO,
            },
            poll: Duration::from_millis(p.poll_ms.max(20)),
            fault: overrides.fault,
            resolver: crate::module::resolve::Resolver {
                override_dir: settings.modules.dir.clone(),
                cache_dir: settings.data_dir().join("modules"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_settings_then_flags() {
        let c = ProviderConfig::resolve(&Settings::from_test_env(&[]), &ProviderOverrides::default()).unwrap();
        assert_eq!((c.slots, c.offer_cpu, c.offer_gpu), (1, 0, 0));
        assert_eq!(c.price, parse_amount("1", "x").unwrap());
        // Ten times the price: with the default audit chance of 10%, a fake loses in
        // expectation (0.1 × (1 + 10) > 1), so the default `dcn run` buys from it.
        assert_eq!(c.collateral, parse_amount("10", "x").unwrap());
        assert!(c.modules.is_empty() && c.mediators.is_empty() && c.solver.is_none());

        let s = Settings::from_test_env(&[
            ("DCN_PROVIDER__PRICE", "0.5"),
            ("DCN_PROVIDER__MODULES", "cowsay, write-files"),
            ("SERVICE_MEDIATORS", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            ("SERVICE_SOLVER", "http://solver:8080"),
        ]);
        let c = ProviderConfig::resolve(&s, &ProviderOverrides::default()).unwrap();
        assert_eq!(c.price, parse_amount("0.5", "x").unwrap());
        assert_eq!(c.modules, ["cowsay", "write-files"]);
        assert_eq!(c.mediators.len(), 1);
        assert_eq!(c.solver.as_deref(), Some("http://solver:8080"));

        let o = ProviderOverrides {
            offer_count: Some(3),
            price: Some("2".into()),
            modules: Some(vec![]),
            mediators: Some(vec![Address::repeat_byte(9)]),
            solver: Some("http://other".into()),
            ..Default::default()
        };
        let c = ProviderConfig::resolve(&s, &o).unwrap();
        assert_eq!(c.slots, 3);
        assert_eq!(c.price, parse_amount("2", "x").unwrap());
        assert!(c.modules.is_empty(), "an empty flag list clears the allow-list");
        assert_eq!(c.mediators, [Address::repeat_byte(9)]);
        assert_eq!(c.solver.as_deref(), Some("http://other"));
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let o = ProviderOverrides { offer_count: Some(0), ..Default::default() };
        let e = ProviderConfig::resolve(&Settings::from_test_env(&[]), &o).unwrap_err().to_string();
        assert!(e.contains("provider.offer_count"), "{e}");
        let o = ProviderOverrides { collateral: Some("lots".into()), ..Default::default() };
        let e = ProviderConfig::resolve(&Settings::from_test_env(&[]), &o).unwrap_err().to_string();
        assert!(e.contains("provider.collateral") && e.contains("`lots`"), "{e}");
    }
}
