//! `dcn deploy`: flags, then `app::admin::deploy`.

use crate::config::Settings;
use alloy::primitives::Address;
use clap::Args;

/// Deploy and wire the contracts with the admin key, and record the deployment in the
/// data dir. Reuses the recorded deployment when its code is still on chain.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Deploy anew even if the recorded deployment is still good
    #[arg(long)]
    pub force: bool,
    /// Print the deployment record as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Account allowed to deliver job-board results [default: config deploy.job_board_operator; on a dev network the solver account; else the admin]
    #[arg(long, value_name = "ADDRESS")]
    pub job_board_operator: Option<Address>,
}

impl DeployArgs {
    /// Runs `dcn deploy`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        crate::app::admin::deploy(settings, self.force, self.job_board_operator, self.json).await.map(|_| ())
    }
}
