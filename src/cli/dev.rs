//! `dcn dev`.

use super::deploy::DeployArgs;
use super::fund::FundArgs;
use crate::chain::{anvil, DevRole};
use crate::config::Settings;
use crate::node::Node;
use crate::provider::setup::ProviderOptions;
use clap::Args;
use eyre::WrapErr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

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
    /// Slots of the built-in provider [default: config provider.offer_count, 1]
    #[arg(long, value_name = "N")]
    pub offer_count: Option<u32>,
}

/// What `dcn dev` writes to <data-dir>/dev/ready.json once everything runs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DevReady {
    /// The chain's RPC URL.
    pub rpc_url: String,
    /// Its chain id.
    pub chain_id: u64,
    /// The solver's URL.
    pub solver_url: String,
    /// The process id.
    pub pid: u32,
}

fn port_free(addr: &str) -> bool {
    std::net::TcpListener::bind(addr).is_ok()
}

impl DevArgs {
    /// Runs `dcn dev` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let mut settings = settings.clone();
        let net = settings.network()?;
        if !net.dev_accounts {
            eyre::bail!(
                "`dcn dev` runs a local development chain, but network `{}` has no development accounts: use \
                 --network geth (the default)",
                net.name
            );
        }
        let dir = settings.data_dir().join("dev");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).wrap_err_with(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).wrap_err_with(|| format!("creating {}", dir.display()))?;

        let wanted = self.chain_port.unwrap_or(settings.dev.chain_port);
        let port = if wanted != 0 && port_free(&format!("127.0.0.1:{wanted}")) { wanted } else { 0 };
        let chain = tokio::task::spawn_blocking(move || anvil::spawn(1337, port)).await??;
        let rpc_url = chain.endpoint();
        if wanted != 0 && port == 0 {
            tracing::warn!(wanted, rpc_url = %rpc_url, "port taken: the chain runs elsewhere; pass --rpc-url to other commands");
        }
        settings.rpc_url = Some(rpc_url.clone());
        settings.chain_id = Some(1337);

        println!("── deploying the contracts");
        DeployArgs { force: true, json: false, job_board_operator: None }.run(&settings).await?;
        println!("── funding the development accounts");
        FundArgs { accounts: vec![], eth: None, tokens: None, json: false }.run(&settings).await?;

        let stop = CancellationToken::new();
        let listen = self.listen.clone().unwrap_or_else(|| settings.solver.listen.clone());
        let listen = if port_free(&listen) { listen } else { "127.0.0.1:0".to_string() };
        let shutdown = {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        };
        let solver = super::solver::start(&settings, Some(listen), None, &dir.join("solver"), shutdown).await?;
        let solver_url = solver.url.clone();

        let mut services = tokio::task::JoinSet::new();
        let mediator_node = Node::connect(&settings, DevRole::Mediator).await?;
        let client = mediator_node.solver(&settings, Some(&solver_url)).await?;
        let mediator = crate::mediator::build(&settings, &mediator_node, client, &dir.join("mediator")).await?;
        services.spawn(mediator.run(stop.clone()));

        let board_node = Node::connect(&settings, DevRole::Solver).await?;
        let client = board_node.solver(&settings, Some(&solver_url)).await?;
        let board = crate::jobboard::build(&settings, &board_node, client, &dir.join("jobboard")).await?;
        services.spawn(board.run(stop.clone()));

        if !self.no_provider {
            let node = Node::connect(&settings, DevRole::Provider).await?;
            let client = node.solver(&settings, Some(&solver_url)).await?;
            let opts = ProviderOptions { offer_count: self.offer_count, ..Default::default() };
            let provider = crate::provider::setup::build(&settings, &node, client, opts, &dir.join("provider")).await?;
            services.spawn(provider.run(stop.clone()));
        }

        let ready = DevReady {
            rpc_url: rpc_url.clone(),
            chain_id: 1337,
            solver_url: solver_url.clone(),
            pid: std::process::id(),
        };
        let ready_path: PathBuf = dir.join("ready.json");
        std::fs::write(&ready_path, serde_json::to_vec_pretty(&ready)?)?;
        let rpc_flag = if port == wanted { String::new() } else { format!(" --rpc-url {rpc_url}") };
        let data_flag = if settings.data_dir() == default_data_dir().as_deref().unwrap_or(settings.data_dir()) {
            String::new()
        } else {
            format!(" --data-dir {}", settings.data_dir().display())
        };
        println!("── dcn dev is running (Ctrl-C stops it)");
        println!("   chain      {rpc_url} (chain id 1337)");
        println!("   solver     {solver_url}  (dashboard: {solver_url}/)");
        println!("   mediator   {}", DevRole::Mediator.address());
        if self.no_provider {
            println!("   provider   none (--no-provider)");
        } else {
            println!("   provider   {}", DevRole::Provider.address());
        }
        println!("   job board  operated by {}", DevRole::Solver.address());
        println!();
        println!("   run a job:  dcn run cowsay -i Message=moo{rpc_flag}{data_flag}");

        tokio::select! {
            _ = super::solver::shutdown_signal() => {}
            Some(done) = services.join_next() => {
                match done {
                    Ok(Err(e)) => tracing::error!(error = %e, "a service stopped"),
                    Err(e) => tracing::error!(error = %e, "a service failed"),
                    Ok(Ok(())) => {}
                }
            }
        }
        println!("── stopping");
        stop.cancel();
        while services.join_next().await.is_some() {}
        solver.wait().await?;
        let _ = std::fs::remove_file(&ready_path);
        drop(chain);
        Ok(())
    }
}

fn default_data_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dcn"))
}
