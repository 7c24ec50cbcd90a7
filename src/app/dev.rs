//! `dcn dev`: a whole local network in one process, composed of the same services as the
//! separate commands: the project-local anvil, the contracts deployed, the development
//! accounts funded, then the solver, a mediator, the job board service and (unless told
//! otherwise) a provider, all under one supervisor. `ready.json` is written atomically once
//! everything runs.

use super::node::Account;
use crate::chain::{anvil, DevRole};
use crate::config::Settings;
use crate::jobboard::{JobBoardConfig, JobBoardOverrides};
use crate::mediator::{MediatorConfig, MediatorOverrides};
use crate::provider::{ProviderConfig, ProviderOverrides};
use crate::runtime::{Stop, Supervisor};
use crate::solver::{SolverConfig, SolverOverrides};
use eyre::WrapErr;
use std::path::{Path, PathBuf};

/// How `dcn dev` is asked to run.
#[derive(Debug, Clone, Default)]
pub struct DevOptions {
    /// Port of the local chain; 0 picks a free one; `None`: `dev.chain_port`.
    pub chain_port: Option<u16>,
    /// The solver's address and port; a free port is used if it is taken.
    pub listen: Option<String>,
    /// Run no provider (tests run their own).
    pub no_provider: bool,
    /// Run no mediator (tests run their own, as a process they can kill).
    pub no_mediator: bool,
    /// Run no job board service (tests run their own, as a process they can kill).
    pub no_jobboard: bool,
    /// Slots of the built-in provider.
    pub offer_count: Option<u32>,
    /// EVM hardfork of the local chain; `None`: `dev.hardfork`, else anvil's latest.
    pub hardfork: Option<String>,
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

/// The hardforks `dcn dev --hardfork` takes: the contracts are compiled for `paris` (the
/// Merge), so every later generation runs them and no earlier one is offered.
pub const HARDFORKS: [&str; 5] = ["paris", "shanghai", "cancun", "prague", "osaka"];

fn port_free(addr: &str) -> bool {
    std::net::TcpListener::bind(addr).is_ok()
}

/// Writes `value` as JSON to `path` atomically: a reader sees the whole file or none.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Runs `dcn dev` until Ctrl-C or SIGTERM, or until one of its services fails.
pub async fn run(settings: &Settings, opts: DevOptions) -> eyre::Result<()> {
    let mut settings = settings.clone();
    let net = settings.network()?;
    // The profile's own flag: dcn dev runs its chain on this machine, whatever RPC URL the
    // environment names for other commands.
    if !settings.networks.get(&net.name).is_some_and(|p| p.dev_accounts) {
        eyre::bail!(
            "`dcn dev` runs a local development chain, but network `{}` has no development accounts: use \
             --network geth (the default)",
            net.name
        );
    }
    let hardfork = opts.hardfork.clone().or_else(|| settings.dev.hardfork.clone());
    if let Some(fork) = hardfork.as_deref().filter(|f| !HARDFORKS.contains(f)) {
        eyre::bail!(
            "unknown hardfork `{fork}` for the local chain: use one of {} (the contracts need paris or later)",
            HARDFORKS.join(", ")
        );
    }
    let dir = settings.data_dir().join("dev");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).wrap_err_with(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).wrap_err_with(|| format!("creating {}", dir.display()))?;

    let wanted = opts.chain_port.unwrap_or(settings.dev.chain_port);
    let port = if wanted != 0 && port_free(&format!("127.0.0.1:{wanted}")) { wanted } else { 0 };
    let chain = tokio::task::spawn_blocking(move || anvil::spawn(1337, port, hardfork.as_deref())).await??;
    let rpc_url = chain.endpoint();
    if wanted != 0 && port == 0 {
        tracing::warn!(wanted, rpc_url = %rpc_url, "port taken: the chain runs elsewhere; pass --rpc-url to other commands");
    }
    settings.rpc_url = Some(rpc_url.clone());
    if opts.no_mediator && settings.services.mediators.is_empty() {
        // The dev mediator is approved but not registered until its own process starts:
        // the dev services name it rather than find none in the registry.
        settings.services.mediators = vec![DevRole::Mediator.address()];
    }
    settings.chain_id = Some(1337);

    println!("── deploying the contracts");
    super::admin::deploy(&settings, true, None, false).await?;
    println!("── funding the development accounts");
    super::admin::fund(&settings, &[], None, None, false).await?;

    // The stop goes in the order that lets each part finish at once: the parties first
    // (they cancel their offers at the solver and leave), then the solver, then the chain
    // (dropped below, after the supervisor is done).
    // From here a Ctrl-C is held for the supervisor (even one that comes just after
    // ready.json is written), so it stops the services in order.
    let mut supervisor = Supervisor::new();
    supervisor.listen();
    let solver_tasks = supervisor.tasks();
    let tasks = solver_tasks.stage();
    let listen = opts.listen.clone().unwrap_or_else(|| settings.solver.listen.clone());
    let listen = if port_free(&listen) { listen } else { "127.0.0.1:0".to_string() };
    let solver_cfg =
        SolverConfig::resolve(&settings, &SolverOverrides { listen: Some(listen), public_url: None, fault: None });
    let solver_account = Account::connect(&settings, DevRole::Solver).await?;
    let solver_url = super::solver::start(&solver_cfg, &solver_account, &dir.join("solver"), &solver_tasks).await?;

    if !opts.no_mediator {
        let mediator = Account::connect(&settings, DevRole::Mediator).await?;
        let client = mediator.solver(Some(&solver_url)).await?;
        let cfg = MediatorConfig::resolve(&settings, &MediatorOverrides::default());
        super::mediator::start(&settings, cfg, &mediator, client, &dir.join("mediator"), &tasks).await?;
    }

    if !opts.no_jobboard {
        let client = solver_account.solver(Some(&solver_url)).await?;
        let cfg = JobBoardConfig::resolve(&settings, &JobBoardOverrides::default())?;
        let mediators = solver_account.mediators(&super::jobboard::configured_mediators(&settings)?).await?;
        let board_dir = dir.join("jobboard");
        super::jobboard::start(&settings, cfg, &solver_account, client, mediators, &board_dir, &tasks).await?;
    }

    if !opts.no_provider {
        let provider = Account::connect(&settings, DevRole::Provider).await?;
        let client = provider.solver(Some(&solver_url)).await?;
        let overrides = ProviderOverrides { offer_count: opts.offer_count, ..Default::default() };
        let cfg = ProviderConfig::resolve(&settings, &overrides)?;
        let mediators = provider.mediators(&cfg.mediators).await?;
        super::provider::start(&settings, cfg, &provider, client, mediators, &dir.join("provider"), &tasks).await?;
    }

    let ready =
        DevReady { rpc_url: rpc_url.clone(), chain_id: 1337, solver_url: solver_url.clone(), pid: std::process::id() };
    let ready_path: PathBuf = dir.join("ready.json");
    write_json_atomic(&ready_path, &ready).wrap_err_with(|| format!("writing {}", ready_path.display()))?;
    print_banner(&settings, &opts, &rpc_url, &solver_url, port == wanted);

    let stop = supervisor.run(true).await;
    println!("── stopped");
    let _ = std::fs::remove_file(&ready_path);
    // The chain goes last, and nothing is left watching it when it does.
    crate::chain::heads::stop_watchers().await;
    drop(chain);
    match stop {
        Stop::Failed { task, error } => Err(eyre::eyre!("service `{task}` failed: {error}")),
        Stop::Signal | Stop::Requested => Ok(()),
    }
}

fn print_banner(settings: &Settings, opts: &DevOptions, rpc_url: &str, solver_url: &str, default_port: bool) {
    let rpc_flag = if default_port { String::new() } else { format!(" --rpc-url {rpc_url}") };
    let default_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dcn"));
    let data_flag = if default_dir.as_deref() == Some(settings.data_dir()) {
        String::new()
    } else {
        format!(" --data-dir {}", settings.data_dir().display())
    };
    println!("── dcn dev is running (Ctrl-C stops it)");
    println!("   chain      {rpc_url} (chain id 1337)");
    println!("   solver     {solver_url}  (dashboard: {solver_url}/)");
    if opts.no_mediator {
        println!("   mediator   none (--no-mediator); `dcn mediator` as {} is approved", DevRole::Mediator.address());
    } else {
        println!("   mediator   {}", DevRole::Mediator.address());
    }
    if opts.no_provider {
        println!("   provider   none (--no-provider)");
    } else {
        println!("   provider   {}", DevRole::Provider.address());
    }
    if opts.no_jobboard {
        println!(
            "   job board  no service (--no-jobboard); `dcn jobboard` as {} operates it",
            DevRole::Solver.address()
        );
    } else {
        println!("   job board  operated by {}", DevRole::Solver.address());
    }
    println!();
    println!("   run a job:  dcn run cowsay -i Message=moo{rpc_flag}{data_flag}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_json_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let ready = DevReady { rpc_url: "http://127.0.0.1:1".into(), chain_id: 1337, solver_url: "x".into(), pid: 1 };
        write_json_atomic(&path, &ready).unwrap();
        let back: DevReady = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.rpc_url, ready.rpc_url);
        assert!(!dir.path().join("ready.json.tmp").exists(), "the temporary file was renamed into place");
    }
}
