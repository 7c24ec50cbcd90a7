//! `dcn jobs`: flags → `app::jobs`.

use crate::app::jobs;
use crate::config::Settings;
use crate::jobcreator::RunOverrides;
use alloy::primitives::B256;
use clap::{Args, Subcommand};

/// The deals `dcn run` bought with this account on this network, with their state on
/// chain; `dcn jobs resume DEAL` takes up one whose `dcn run` was stopped or killed and
/// follows it to its end (results downloaded and verified, accepted or challenged, or
/// refunded by timeout).
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// What to do [default: list the deals]
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    /// Print JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
}

/// `dcn jobs` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Follow a deal to its end, as `dcn run` would have
    Resume {
        /// The deal id (0x…), as `dcn jobs` lists it
        deal: B256,
        /// The solver: a URL, or an address looked up in DcnRegistry [default: as for dcn run]
        #[arg(long, value_name = "URL|ADDRESS")]
        solver: Option<String>,
    },
}

impl JobsArgs {
    /// Runs `dcn jobs`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        match self.command {
            None => jobs::list(settings, self.json).await,
            Some(JobsCommand::Resume { deal, solver }) => {
                let overrides = RunOverrides { solver, ..Default::default() };
                jobs::resume(settings, deal, self.json, &overrides).await
            }
        }
    }
}
