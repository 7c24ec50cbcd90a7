//! `dcn mediator`: flags → [`MediatorOverrides`], then `app::mediator`.

use crate::config::Settings;
use crate::mediator::MediatorOverrides;
use clap::Args;

/// Mediate challenged deals: registers in DcnRegistry, watches for challenges that drew
/// this account, re-runs each job in its own sandbox, compares the result hash with the
/// provider's and posts the verdict on chain. Challenges in flight are kept in RocksDB
/// under <data-dir>/mediator/<address>/ and resume after a restart. Stop it with Ctrl-C.
#[derive(Debug, Args)]
pub struct MediatorArgs {
    /// The solver to fetch job specs from: a URL, or an address looked up in DcnRegistry [default: config services.solver / SERVICE_SOLVER, else the first solver the registry's owner approved]
    #[arg(long, value_name = "URL|ADDRESS")]
    pub solver: Option<String>,
    /// Test-only: misbehave on purpose (builds with the `fault-injection` feature only)
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_enum)]
    pub fault: Option<crate::mediator::config::Fault>,
}

impl MediatorArgs {
    /// Runs `dcn mediator` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        #[cfg(feature = "fault-injection")]
        let fault = self.fault;
        #[cfg(not(feature = "fault-injection"))]
        let fault = None;
        crate::app::mediator::run(settings, &MediatorOverrides { solver: self.solver, fault }).await
    }
}
