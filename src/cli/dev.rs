//! `dcn dev`: flags → [`DevOptions`], then `app::dev`.

use crate::app::dev::DevOptions;
use crate::config::Settings;
use clap::Args;

/// A whole local network in one process: starts the project-local anvil (chain id 1337 on
/// the geth profile's port, or a free one if it is taken), deploys the contracts, funds
/// the development accounts, and runs the solver, a mediator, a provider and the job
/// board service. Then `dcn run cowsay -i Message=moo` in another terminal buys a job
/// from it with no flags. Its state lives in <data-dir>/dev/ and is wiped at start, like
/// its chain. Stop it with Ctrl-C.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port of the local chain; 0 picks a free one [default: config dev.chain_port, 8546]
    #[arg(long, value_name = "PORT")]
    pub chain_port: Option<u16>,
    /// Address and port of the solver; a free port is used if it is taken [default: config solver.listen]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Do not run a provider (tests run their own)
    #[arg(long)]
    pub no_provider: bool,
    /// Do not run a mediator (tests run their own)
    #[arg(long)]
    pub no_mediator: bool,
    /// Do not run the job board service (tests run their own)
    #[arg(long)]
    pub no_jobboard: bool,
    /// Slots of the built-in provider [default: config provider.offer_count, 1]
    #[arg(long, value_name = "N")]
    pub offer_count: Option<u32>,
    /// EVM hardfork of the local chain, to try dcn on an older chain generation: paris,
    /// shanghai, cancun, prague or osaka [default: config dev.hardfork, else anvil's latest]
    #[arg(long, value_name = "NAME")]
    pub hardfork: Option<String>,
}

impl DevArgs {
    /// Runs `dcn dev` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let opts = DevOptions {
            chain_port: self.chain_port,
            listen: self.listen,
            no_provider: self.no_provider,
            no_mediator: self.no_mediator,
            no_jobboard: self.no_jobboard,
            offer_count: self.offer_count,
            hardfork: self.hardfork,
        };
        crate::app::dev::run(settings, opts).await
    }
}
