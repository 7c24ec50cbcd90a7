//! `dcn jobboard`.

use crate::chain::DevRole;
use crate::config::Settings;
use crate::node::Node;
use clap::Args;

/// Serve on-chain job requests: follows DcnJobBoard for requests (such as
/// CowsayClient.runCowsay), buys each job on the network as a job creator, verifies and
/// accepts the result, and delivers its hash back on chain, which pays this operator and
/// calls the requesting contract back. Needs the board operator's key (on a development
/// network: the solver account). State is kept under <data-dir>/jobboard/. Stop it with
/// Ctrl-C.
#[derive(Debug, Args)]
pub struct JobBoardArgs {
    /// The solver: a URL, or an address looked up in DcnRegistry [default: config services.solver / SERVICE_SOLVER, else the registered solver]
    #[arg(long, value_name = "URL|ADDRESS")]
    pub solver: Option<String>,
}

impl JobBoardArgs {
    /// Runs `dcn jobboard` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let node = Node::connect(settings, DevRole::Solver).await?;
        let solver = node.solver(settings, self.solver.as_deref()).await?;
        let service = crate::jobboard::build(settings, &node, solver, &settings.data_dir().join("jobboard")).await?;
        let stop = super::solver::stop_on_signal();
        service.run(stop).await
    }
}
