//! The job creator's configuration: the terms of its job offers, resolved from the
//! settings (`[job]`, `[services]`) and `dcn run`'s overrides (pure: unit-tested below).

use crate::config::{InvalidSetting, Settings};
use crate::units::parse_amount;
use alloy::primitives::{Address, U256};
use std::time::Duration;

/// What `dcn run` flags override; `None` keeps the setting.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// `--max-price`.
    pub max_price: Option<String>,
    /// `--mediation-fee`.
    pub mediation_fee: Option<String>,
    /// `--mediators`.
    pub mediators: Option<Vec<Address>>,
    /// `--match-timeout`, seconds.
    pub match_timeout_secs: Option<u64>,
    /// `--result-margin`, seconds.
    pub result_margin_secs: Option<u64>,
    /// `--solver`.
    pub solver: Option<String>,
}

/// The terms a job creator offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTerms {
    /// Most it pays, token units.
    pub max_price: U256,
    /// Fee for a mediator on a challenge, token units.
    pub mediation_fee: U256,
    /// Fee for a mediator on an audit, token units (locked with the price).
    pub audit_fee: U256,
    /// Chance of an audit, parts per million.
    pub audit_ppm: u32,
    /// How long to wait for a provider.
    pub match_timeout: Duration,
    /// Seconds over the job's own timeout the provider has to deliver.
    pub result_margin_secs: u64,
    /// Seconds to judge a result.
    pub judge_timeout_secs: u64,
    /// Seconds for the mediator.
    pub mediation_timeout_secs: u64,
    /// How often the chain is read while waiting.
    pub poll: Duration,
}

/// Everything the job creator takes from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCreatorConfig {
    /// The offer terms.
    pub terms: JobTerms,
    /// Trusted mediators as configured (empty: the ones the registry's owner approved).
    pub mediators: Vec<Address>,
    /// The solver as configured (URL or address; `None`: the registry's).
    pub solver: Option<String>,
}

impl JobCreatorConfig {
    /// The configuration from `settings` with `overrides` on top.
    pub fn resolve(settings: &Settings, overrides: &RunOverrides) -> Result<Self, InvalidSetting> {
        let j = &settings.job;
        Ok(Self {
            terms: JobTerms {
                max_price: parse_amount(overrides.max_price.as_deref().unwrap_or(&j.max_price), "job.max_price")?,
                mediation_fee: parse_amount(
                    overrides.mediation_fee.as_deref().unwrap_or(&j.mediation_fee),
                    "job.mediation_fee",
                )?,
                audit_fee: parse_amount(&j.audit_fee, "job.audit_fee")?,
                audit_ppm: if j.audit_ppm > crate::protocol::PPM {
                    return Err(InvalidSetting::new(
                        "job.audit_ppm",
                        format!("{} is more than {} (every result)", j.audit_ppm, crate::protocol::PPM),
                    ));
                } else {
                    j.audit_ppm
                },
                match_timeout: Duration::from_secs(overrides.match_timeout_secs.unwrap_or(j.match_timeout_secs)),
                result_margin_secs: overrides.result_margin_secs.unwrap_or(j.result_margin_secs),
                judge_timeout_secs: j.judge_timeout_secs,
                mediation_timeout_secs: j.mediation_timeout_secs,
                poll: Duration::from_millis(j.poll_ms.max(20)),
            },
            mediators: overrides.mediators.clone().unwrap_or_else(|| settings.services.mediators.clone()),
            solver: overrides.solver.clone().or_else(|| settings.services.solver.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_settings_and_flags() {
        let c = JobCreatorConfig::resolve(&Settings::from_test_env(&[]), &RunOverrides::default()).unwrap();
        assert_eq!(c.terms.max_price, parse_amount("10", "x").unwrap());
        assert_eq!(c.terms.match_timeout, Duration::from_secs(60));
        assert_eq!((c.terms.result_margin_secs, c.terms.judge_timeout_secs), (120, 300));
        let s = Settings::from_test_env(&[("DCN_JOB__MAX_PRICE", "3"), ("SERVICE_SOLVER", "http://s")]);
        let o = RunOverrides { match_timeout_secs: Some(5), mediation_fee: Some("0.5".into()), ..Default::default() };
        let c = JobCreatorConfig::resolve(&s, &o).unwrap();
        assert_eq!(c.terms.max_price, parse_amount("3", "x").unwrap());
        assert_eq!(c.terms.mediation_fee, parse_amount("0.5", "x").unwrap());
        assert_eq!(c.terms.match_timeout, Duration::from_secs(5));
        assert_eq!(c.solver.as_deref(), Some("http://s"));
    }

    #[test]
    fn a_bad_amount_names_the_setting() {
        let o = RunOverrides { max_price: Some("cheap".into()), ..Default::default() };
        let e = JobCreatorConfig::resolve(&Settings::from_test_env(&[]), &o).unwrap_err().to_string();
        assert!(e.contains("job.max_price") && e.contains("`cheap`"), "{e}");
    }
}
