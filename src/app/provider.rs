//! `dcn provider`'s composition root: sizes the offer from the machine, finds the solver
//! and the mediators, builds the Docker executor (removing containers an earlier run left)
//! and the store, registers in `DcnRegistry`, and runs the [`ProviderService`].

use super::node::{docker_executor, instance_label, remove_leftovers, state_dir, Account};
use crate::chain::{DevRole, Role};
use crate::config::Settings;
use crate::executor::gpu::GpuPool;
use crate::kv::KvStore;
use crate::protocol::registry::register;
use crate::protocol::{SolverApi, SolverClient};
use crate::provider::machine::Machine;
use crate::provider::{Offering, ProviderConfig, ProviderDeps, ProviderOverrides, ProviderService};
use crate::runtime::{Supervisor, Tasks};
use crate::types::Resources;
use crate::units::format_amount;
use eyre::WrapErr;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Runs `dcn provider` until Ctrl-C or SIGTERM.
pub async fn run(settings: &Settings, overrides: &ProviderOverrides) -> eyre::Result<()> {
    let cfg = ProviderConfig::resolve(settings, overrides)?;
    let account = Account::connect(settings, DevRole::Provider).await?;
    let solver = account.solver(cfg.solver.as_deref()).await?;
    let dir = settings.data_dir().join("provider").join(account.address().to_string().to_lowercase());
    let supervisor = Supervisor::new();
    start(settings, cfg, &account, solver, &dir, &supervisor.tasks()).await?;
    supervisor.run_to_end(true).await?;
    Ok(())
}

/// Builds the provider of `account` working through `solver`, its state in `dir`, and
/// starts it as the task `provider` of `tasks`.
pub async fn start(
    settings: &Settings,
    cfg: ProviderConfig,
    account: &Account,
    solver: SolverClient,
    dir: &Path,
    tasks: &Tasks,
) -> eyre::Result<()> {
    state_dir(dir)?;
    let machine = Machine::detect(dir, cfg.offer_gpu > 0)
        .wrap_err("offering GPUs (provider.offer_gpu, --offer-gpu) needs NVIDIA GPUs")?;
    let slot = machine.slot(cfg.slots, cfg.offer_cpu, cfg.offer_ram_mb, cfg.offer_gpu)?;
    let mediators = account.mediators(&cfg.mediators).await?;
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
