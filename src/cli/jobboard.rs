//! `dcn jobboard`: flags → [`JobBoardOverrides`], then `app::jobboard`.

use crate::config::Settings;
use crate::jobboard::JobBoardOverrides;
use clap::Args;

/// Serve on-chain job requests: follows DcnJobBoard for requests (such as
/// CowsayClient.runCowsay), buys each job on the network as a job creator, verifies and
/// accepts the result, and delivers its hash back on chain, which pays this operator and
/// calls the requesting contract back. Needs the board operator's key (on a development
/// network: the solver account). State is kept under <data-dir>/jobboard/. Stop it with
/// Ctrl-C.
#[derive(Debug, Args)]
pub struct JobBoardArgs {
    /// The solver: a URL, or an address looked up in DcnRegistry [default: config services.solver / SERVICE_SOLVER, else the first solver the registry's owner approved]
    #[arg(long, value_name = "URL|ADDRESS")]
    pub solver: Option<String>,
    /// Test builds only: misbehave (exit-after-create), to exercise restarts
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true, value_name = "KIND")]
    pub fault: Option<crate::jobboard::config::BoardFault>,
}

impl JobBoardArgs {
    /// Runs `dcn jobboard` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        #[cfg(feature = "fault-injection")]
        let fault = self.fault;
        #[cfg(not(feature = "fault-injection"))]
        let fault = None;
        crate::app::jobboard::run(settings, &JobBoardOverrides { solver: self.solver, fault }).await
    }
}
