//! `dcn solver`'s composition root: binds, opens the store, registers the public URL in
//! `DcnRegistry`, and starts the server and the chain follower under the supervisor.

use super::node::Account;
use crate::chain::{DevRole, Role};
use crate::config::Settings;
use crate::protocol::registry::register;
use crate::runtime::{Supervisor, Tasks};
use crate::solver::store::RocksStore;
use crate::solver::{Solver, SolverConfig, SolverOverrides, SolverParams};
use eyre::WrapErr;
use std::path::Path;
use std::sync::Arc;

/// Runs `dcn solver` until Ctrl-C or SIGTERM.
pub async fn run(settings: &Settings, overrides: &SolverOverrides) -> eyre::Result<()> {
    let cfg = SolverConfig::resolve(settings, overrides);
    let account = Account::connect(settings, DevRole::Solver).await?;
    let supervisor = Supervisor::new();
    start(&cfg, &account, &settings.data_dir().join("solver"), &supervisor.tasks()).await?;
    supervisor.run_to_end(true).await?;
    Ok(())
}

/// Starts the solver of `account` with `cfg`, its state in `dir`, as tasks of `tasks`;
/// returns its public URL.
pub async fn start(cfg: &SolverConfig, account: &Account, dir: &Path, tasks: &Tasks) -> eyre::Result<String> {
    let net = &account.client.network;
    let contracts = account.deployment.contracts;
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await.wrap_err_with(|| {
        format!("cannot listen on {}: is another solver running? pick another with --listen", cfg.listen)
    })?;
    let addr = listener.local_addr()?;
    let public_url = cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let store = RocksStore::open(&dir.join("db")).wrap_err("opening the solver's database")?;
    // Deals name at least the network's fewest mediators: the matcher pairs no fewer.
    let rules = crate::chain::DealsChain::rules(account.chain().as_ref()).await?;
    let params = SolverParams {
        core: cfg.core(account.address(), net.chain_id, contracts.deals, usize::from(rules.min_mediators)),
        limits: cfg.limits.clone(),
        store: Arc::new(store),
        results_dir: dir.join("results"),
        escrow: account.chain(),
        escrow_ttl: cfg.escrow_ttl,
        chain: Some(account.chain()),
        genesis_hash: account.client.genesis_hash().await?,
    };
    if register(&account.client, contracts.registry, Role::Solver, &public_url, "")
        .await
        .wrap_err("registering the solver in DcnRegistry")?
    {
        tracing::info!(url = %public_url, "registered in DcnRegistry");
    }
    let server = Solver::start(params, listener, tasks)?;
    let chain = account.chain();
    tasks.spawn_service(
        "solver/chain",
        crate::solver::chain::follow(
            server.state.clone(),
            chain.clone(),
            chain,
            contracts.deals,
            cfg.chain_poll,
            tasks.token().clone(),
        ),
    );
    tracing::info!(
        listen = %addr,
        url = %public_url,
        solver = %account.address(),
        network = %net.name,
        "solver ready: dashboard at http://{addr}/"
    );
    Ok(public_url)
}
