//! `dcn solver`: flags → [`SolverOverrides`], then `app::solver`.

use crate::config::Settings;
use crate::solver::SolverOverrides;
use clap::Args;

/// Run the solver: an HTTP + WebSocket server that takes signed offers, matches them into
/// deals, relays result bundles and streams events. It registers its URL in DcnRegistry,
/// keeps its state in RocksDB under <data-dir>/solver/ and follows deal states on chain.
/// Stop it with Ctrl-C (or SIGTERM).
#[derive(Debug, Args)]
pub struct SolverArgs {
    /// Address and port to listen on [default: config solver.listen, 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// URL clients reach this solver at, registered on chain [default: config solver.public_url (SERVER_URL), else http://<listen>]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Test builds only: misbehave (one-mediator), to exercise the parties' checks
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true, value_enum)]
    pub fault: Option<crate::solver::core::Fault>,
}

impl SolverArgs {
    /// The flags as overrides of the settings.
    pub fn overrides(&self) -> SolverOverrides {
        #[cfg(feature = "fault-injection")]
        let fault = self.fault;
        #[cfg(not(feature = "fault-injection"))]
        let fault = None;
        SolverOverrides { listen: self.listen.clone(), public_url: self.public_url.clone(), fault }
    }

    /// Runs `dcn solver` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        crate::app::solver::run(settings, &self.overrides()).await
    }
}
