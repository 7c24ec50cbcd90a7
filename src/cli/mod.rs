//! Command-line definitions (clap derive), one file per subcommand: each args struct maps
//! its flags to its role's overrides and calls the command in `app`. Nothing else lives
//! here; no code below sees clap types.

mod bundle;
mod config_cmd;
mod deploy;
mod dev;
mod fund;
mod jobboard;
mod jobs;
mod keys;
mod mediator;
mod module;
mod provider;
mod registry;
mod run;
mod solver;

use crate::config::{Overrides, Settings};
use crate::logging::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// dcn: a decentralized compute network. Providers sell CPU/GPU time, developers buy
/// jobs, an EVM chain holds the deals and the money.
#[derive(Debug, Parser)]
#[command(name = "dcn", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes; they override the config file and the environment.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Config file [default: ~/.dcn/config.toml if it exists]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Network profile to use (`geth` is the local development chain) [default: geth]
    #[arg(long, global = true, value_name = "NAME")]
    pub network: Option<String>,
    /// JSON-RPC URL, overriding the network profile's (also WEB3_RPC_URL)
    #[arg(long, global = true, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// Chain id the node must report, overriding the profile's (also WEB3_CHAIN_ID)
    #[arg(long, global = true, value_name = "ID")]
    pub chain_id: Option<u64>,
    /// The network's DcnRegistry address, as `dcn deploy` prints it: the other contracts are
    /// read from it, so no deployment record is needed on this machine (also DCN_REGISTRY)
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub registry: Option<alloy::primitives::Address>,
    /// Where deployments, keys and state are kept [default: ~/.dcn]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr; filter with RUST_LOG [default: pretty]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

impl GlobalOpts {
    /// The flags as the top configuration layer.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            network: self.network.clone(),
            rpc_url: self.rpc_url.clone(),
            chain_id: self.chain_id,
            registry: self.registry,
            data_dir: self.data_dir.clone(),
            log_format: self.log_format,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect result bundles: extract one safely, check its hash
    Bundle(bundle::BundleArgs),
    /// A whole local network in one process: chain, contracts, solver, mediator, provider
    Dev(dev::DevArgs),
    /// Deploy the contracts to a network and record their addresses
    Deploy(deploy::DeployArgs),
    /// Send gas money and tokens from the admin account to the service accounts
    Fund(fund::FundArgs),
    /// Serve on-chain job requests from DcnJobBoard (as its operator)
    Jobboard(jobboard::JobBoardArgs),
    /// List the deals `dcn run` bought with this account; resume one whose run was killed
    Jobs(jobs::JobsArgs),
    /// Make and inspect account keys
    Keys(keys::KeysArgs),
    /// Re-run challenged jobs and post verdicts on chain
    Mediator(mediator::MediatorArgs),
    /// Inspect modules without running them (the job hash a job-board request names)
    Module(module::ModuleArgs),
    /// List the network's registered services; approve or revoke them (owner)
    Registry(registry::RegistryArgs),
    /// Sell this machine's CPU/GPU time: offer it, sign deals, run jobs, get paid
    Provider(provider::ProviderArgs),
    /// Run a module (--local: on this machine, without the network)
    Run(run::RunArgs),
    /// Run the solver: take signed offers, match them into deals, relay results
    Solver(solver::SolverArgs),
    /// Show the resolved configuration
    Config(config_cmd::ConfigArgs),
}

impl Command {
    /// Runs the subcommand with the loaded settings.
    pub async fn run(self, settings: Settings) -> eyre::Result<()> {
        match self {
            Command::Bundle(args) => args.run(),
            Command::Dev(args) => args.run(&settings).await,
            Command::Deploy(args) => args.run(&settings).await,
            Command::Fund(args) => args.run(&settings).await,
            Command::Jobboard(args) => args.run(&settings).await,
            Command::Keys(args) => args.run(&settings),
            Command::Mediator(args) => args.run(&settings).await,
            Command::Registry(args) => args.run(&settings).await,
            Command::Module(args) => args.run(&settings),
            Command::Jobs(args) => args.run(&settings).await,
            Command::Provider(args) => args.run(&settings).await,
            Command::Run(args) => args.run(&settings).await,
            Command::Solver(args) => args.run(&settings).await,
            Command::Config(args) => args.run(&settings),
        }
    }
}
