//! The mediator's configuration, resolved from the settings and its command-line overrides
//! (pure: unit-tested below).

use crate::config::Settings;
use std::time::Duration;

/// What `dcn mediator` flags override; `None` keeps the setting.
#[derive(Debug, Clone, Default)]
pub struct MediatorOverrides {
    /// `--solver`.
    pub solver: Option<String>,
    /// `--fault` (test builds only).
    pub fault: Option<Fault>,
}

/// Test-only misbehaviour of a mediator (`--fault`, in builds with the `fault-injection`
/// feature): what the tests of appeals play against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Rule the opposite of what its re-run shows.
    WrongVerdict,
}

/// Everything the mediator takes from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediatorConfig {
    /// How often the chain is read for challenges and deal states.
    pub poll: Duration,
    /// The solver to fetch job specs from, as configured (`None`: the registry's).
    pub solver: Option<String>,
    /// Test-only misbehaviour.
    pub fault: Option<Fault>,
}

impl MediatorConfig {
    /// The configuration from `settings` with `overrides` on top.
    pub fn resolve(settings: &Settings, overrides: &MediatorOverrides) -> Self {
        Self {
            poll: Duration::from_millis(settings.mediator.poll_ms.max(20)),
            solver: overrides.solver.clone().or_else(|| settings.services.solver.clone()),
            fault: overrides.fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_and_solver() {
        let s = Settings::from_test_env(&[("DCN_MEDIATOR__POLL_MS", "5")]);
        let c = MediatorConfig::resolve(&s, &MediatorOverrides::default());
        assert_eq!(c.poll, Duration::from_millis(20), "polls no faster than 20 ms");
        assert_eq!(c.solver, None);
        let c = MediatorConfig::resolve(&s, &MediatorOverrides { solver: Some("http://s".into()), fault: None });
        assert_eq!(c.solver.as_deref(), Some("http://s"));
    }
}
