//! `dcn mediator`'s composition root: finds the solver (waiting until one is approved),
//! builds the Docker executor (removing containers an earlier run left) and the store,
//! registers in `DcnRegistry`, and runs the [`MediatorService`].

use super::node::{docker_executor, instance_label, remove_leftovers, state_dir, Account};
use crate::chain::{DevRole, Role};
use crate::config::Settings;
use crate::kv::KvStore;
use crate::mediator::{MediatorConfig, MediatorDeps, MediatorOverrides, MediatorService};
use crate::protocol::registry::register;
use crate::protocol::{SolverApi, SolverClient};
use crate::runtime::Tasks;
use eyre::WrapErr;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Runs `dcn mediator` until Ctrl-C or SIGTERM; until the network's owner approved a
/// solver, it waits for one.
pub async fn run(settings: &Settings, overrides: &MediatorOverrides) -> eyre::Result<()> {
    let cfg = MediatorConfig::resolve(settings, overrides);
    let settings = settings.clone();
    super::serve(move |tasks| async move {
        let account = Account::connect(&settings, DevRole::Mediator).await?;
        let Some(solver) = account.await_solver(cfg.solver.as_deref(), tasks.token()).await? else { return Ok(()) };
        let dir = settings.data_dir().join("mediator").join(account.address().to_string().to_lowercase());
        start(&settings, cfg, &account, solver, &dir, &tasks).await
    })
    .await
}

/// Builds the mediator of `account` fetching jobs from `solver`, its state in `dir`, and
/// starts it as the task `mediator` of `tasks`.
pub async fn start(
    settings: &Settings,
    cfg: MediatorConfig,
    account: &Account,
    solver: SolverClient,
    dir: &Path,
    tasks: &Tasks,
) -> eyre::Result<()> {
    state_dir(dir)?;
    let me = account.address();
    let labels = HashMap::from([
        ("dcn.mediator".to_string(), me.to_string().to_lowercase()),
        ("dcn.instance".to_string(), instance_label(dir)),
    ]);
    let executor = docker_executor(settings, Default::default(), None, labels).await?;
    remove_leftovers(&executor).await;
    let kv = KvStore::open(&dir.join("db")).wrap_err("opening the mediator's database")?;
    register(&account.client, account.deployment.contracts.registry, Role::Mediator, solver.url(), "")
        .await
        .wrap_err("registering the mediator in DcnRegistry")?;
    let chain = account.chain();
    // Only bonded mediators are drawn: post the network's least bond if short.
    let rules = crate::chain::DealsChain::rules(chain.as_ref()).await?;
    let posted = crate::chain::DealsChain::ensure_bond(chain.as_ref(), rules.min_bond)
        .await
        .wrap_err("posting the mediator bond (a mediator is drawn only while bonded)")?;
    if !posted.is_zero() {
        tracing::info!(amount = %crate::units::format_amount(posted), "posted the mediator bond");
    }
    let deps = MediatorDeps {
        account: me,
        chain: chain.clone(),
        logs: chain,
        deals_contract: account.deployment.contracts.deals,
        solver: Arc::new(solver.retrying_until(tasks.token())),
        executor: Arc::new(executor),
        kv,
    };
    let service = MediatorService::new(cfg, dir.join("jobs"), deps);
    tasks.spawn_service("mediator", service.run(tasks.clone()));
    Ok(())
}
