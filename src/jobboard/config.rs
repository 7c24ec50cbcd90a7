//! The job board service's configuration, resolved from the settings and its command-line
//! overrides (pure: unit-tested below). The terms it buys jobs on are the job creator's
//! (`[job]`).

use crate::config::{InvalidSetting, Settings};
use crate::module::resolve::Resolver;
use crate::units::parse_amount;
use alloy::primitives::U256;
use std::time::Duration;

/// What `dcn jobboard` flags override; `None` keeps the setting.
#[derive(Debug, Clone, Default)]
pub struct JobBoardOverrides {
    /// `--solver`.
    pub solver: Option<String>,
    /// Test-only: misbehave this way.
    pub fault: Option<BoardFault>,
}

/// Test-only misbehaviour of the job board service (`--fault`, in builds with the
/// `fault-injection` feature), for the restart tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BoardFault {
    /// Exits, as if killed, once a deal's `createDeal` is mined and before the board
    /// records it.
    ExitAfterCreate,
}

/// Everything the job board service takes from configuration.
#[derive(Debug, Clone)]
pub struct JobBoardConfig {
    /// How often the chain is read for requests.
    pub poll: Duration,
    /// The solver as configured (`None`: the registry's).
    pub solver: Option<String>,
    /// Where module names are looked up (the operator's module dir, then the built-ins).
    pub resolver: Resolver,
    /// What a request must offer before a deal is bought for it.
    pub worth: Worth,
    /// Test-only: misbehave this way.
    pub fault: Option<BoardFault>,
}

/// When a request is worth buying a deal for (THREATS K5: a request paying nothing, or
/// due before any job could finish, would make the operator pay for a deal it cannot be
/// paid for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worth {
    /// Least payment, token units.
    pub min_payment: U256,
    /// Seconds over the job's own timeout a provider has to deliver (`job.result_margin_secs`):
    /// a request due sooner than that could see its deal pay out after the request closed.
    pub result_margin_secs: u64,
    /// What a deal may cost the operator on top of its price: the mediation fee of a
    /// challenge and the audit fee (THREATS K5): the price it pays is at most the request's
    /// payment less these.
    pub fees: U256,
}

impl JobBoardConfig {
    /// The configuration from `settings` with `overrides` on top.
    pub fn resolve(settings: &Settings, overrides: &JobBoardOverrides) -> Result<Self, InvalidSetting> {
        Ok(Self {
            poll: Duration::from_millis(settings.jobboard.poll_ms.max(20)),
            solver: overrides.solver.clone().or_else(|| settings.services.solver.clone()),
            resolver: Resolver {
                override_dir: settings.modules.dir.clone(),
                cache_dir: settings.data_dir().join("modules"),
            },
            worth: Worth {
                min_payment: parse_amount(&settings.jobboard.min_payment, "jobboard.min_payment")?,
                result_margin_secs: settings.job.result_margin_secs,
                fees: parse_amount(&settings.job.mediation_fee, "job.mediation_fee")?
                    + parse_amount(&settings.job.audit_fee, "job.audit_fee")?,
            },
            fault: overrides.fault,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_solver_and_modules() {
        let s = Settings::from_test_env(&[
            ("HOME", "/home/op"),
            ("DCN_JOBBOARD__POLL_MS", "250"),
            ("DCN_MODULES__DIR", "/srv/modules"),
            ("DCN_JOBBOARD__MIN_PAYMENT", "2.5"),
        ]);
        let c =
            JobBoardConfig::resolve(&s, &JobBoardOverrides { solver: Some("http://s".into()), fault: None }).unwrap();
        assert_eq!(c.worth.min_payment, parse_amount("2.5", "x").unwrap());
        assert_eq!(c.worth.result_margin_secs, 120, "the job creator's margin");
        assert_eq!(c.poll, Duration::from_millis(250));
        assert_eq!(c.solver.as_deref(), Some("http://s"));
        assert_eq!(c.resolver.override_dir.as_deref(), Some(std::path::Path::new("/srv/modules")));
        assert_eq!(c.resolver.cache_dir, std::path::Path::new("/home/op/.dcn/modules"));
    }
}
