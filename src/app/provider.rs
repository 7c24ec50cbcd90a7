//! `dcn provider`'s composition root: sizes the offer from the machine, finds the solver
//! and the mediators (waiting until they are approved), builds the Docker executor
//! (removing containers an earlier run left) and the store, registers in `DcnRegistry`,
//! and runs the [`ProviderService`].

use super::node::{docker_executor, instance_label, remove_leftovers, state_dir, Account};
use crate::chain::{DevRole, Role};
use crate::config::Settings;
use crate::executor::gpu::GpuPool;
use crate::kv::KvStore;
use crate::protocol::registry::register;
use crate::protocol::{SolverApi, SolverClient};
use crate::provider::machine::Machine;
use crate::provider::{Offering, ProviderConfig, ProviderDeps, ProviderOverrides, ProviderService};
use crate::runtime::Tasks;
use crate::types::Resources;
use crate::units::format_amount;
use alloy::primitives::Address;
use eyre::WrapErr;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Runs `dcn provider` until Ctrl-C or SIGTERM; until the network's owner approved a
/// solver and a mediator, it waits for them.
pub async fn run(settings: &Settings, overrides: &ProviderOverrides) -> eyre::Result<()> {
    let cfg = ProviderConfig::resolve(settings, overrides)?;
    let settings = settings.clone();
    super::serve(move |tasks| async move {
        let account = Account::connect(&settings, DevRole::Provider).await?;
        let Some(solver) = account.await_solver(cfg.solver.as_deref(), tasks.token()).await? else { return Ok(()) };
        let Some(mediators) = account.await_mediators(&cfg.mediators, tasks.token()).await? else { return Ok(()) };
        let dir = settings.data_dir().join("provider").join(account.address().to_string().to_lowercase());
        start(&settings, cfg, &account, solver, mediators, &dir, &tasks).await
    })
    .await
}

/// Builds the provider of `account` working through `solver` and trusting `mediators`,
/// its state in `dir`, and starts it as the task `provider` of `tasks`.
pub async fn start(
    settings: &Settings,
    mut cfg: ProviderConfig,
    account: &Account,
    solver: SolverClient,
    mediators: Vec<Address>,
    dir: &Path,
    tasks: &Tasks,
) -> eyre::Result<()> {
    state_dir(dir)?;
    // The network's rules: a deal it signs must pass them, or `createDeal` refuses it.
    let rules = crate::chain::DealsChain::rules(account.chain().as_ref()).await?;
    cfg.limits.min_mediators = rules.min_mediators;
    cfg.limits.min_mediation_fee = rules.min_mediation_fee;
    let machine = Machine::detect(dir, cfg.offer_gpu > 0)
        .wrap_err("offering GPUs (provider.offer_gpu, --offer-gpu) needs NVIDIA GPUs")?;
    let slot = machine.slot(cfg.slots, cfg.offer_cpu, cfg.offer_ram_mb, cfg.offer_gpu)?;
    let me = account.address();
    let labels = HashMap::from([
        ("dcn.provider".to_string(), me.to_string().to_lowercase()),
        ("dcn.instance".to_string(), instance_label(dir)),
    ]);
    let pool = (cfg.offer_gpu > 0).then(|| GpuPool::new(machine.gpus.clone()));
    let n = cfg.slots;
    let capacity = Resources {
        cpu: slot.cpu * u64::from(n),
        ram_mb: slot.ram_mb * u64::from(n),
        gpus: slot.gpus * n,
        vram_mb: slot.vram_mb,
        disk_mb: slot.disk_mb * u64::from(n),
    };
    let executor = docker_executor(settings, capacity, pool, labels).await?;
    remove_leftovers(&executor).await;
    let kv = KvStore::open(&dir.join("db")).wrap_err("opening the provider's database")?;
    let metadata = serde_json::json!({
        "slot": slot, "slots": n, "price": cfg.price.to_string(), "collateral": cfg.collateral.to_string(),
        "modules": cfg.modules,
    })
    .to_string();
    register(&account.client, account.deployment.contracts.registry, Role::Provider, solver.url(), &metadata)
        .await
        .wrap_err("registering the provider in DcnRegistry")?;
    tracing::info!(
        provider = %me,
        slots = n,
        cpu = slot.cpu,
        ram_mb = slot.ram_mb,
        gpus = slot.gpus,
        price = %format_amount(cfg.price),
        collateral = %format_amount(cfg.collateral),
        mediators = ?mediators,
        solver = %solver.url(),
        "provider ready"
    );
    let deps = ProviderDeps {
        signer: account.signer.clone(),
        chain: account.chain(),
        solver: Arc::new(solver.retrying_until(tasks.token())),
        executor: Arc::new(executor),
        kv,
    };
    let service = ProviderService::new(cfg, Offering { slot, mediators }, dir.join("jobs"), deps);
    tasks.spawn_service("provider", service.run(tasks.clone()));
    Ok(())
}
