//! Building a [`ProviderService`] from the settings and the command line: the machine's
//! resources, the offer, the mediators, the executor, the store; and registering it.

use super::machine::Machine;
use super::{terms, ProviderConfig, ProviderService};
use crate::chain::units::parse_amount;
use crate::config::Settings;
use crate::executor::gpu::GpuPool;
use crate::node::{docker_executor, Node};
use crate::solver::client::SolverClient;
use crate::store::KvStore;
use alloy::primitives::Address;
use eyre::WrapErr;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Values from the command line; `None` takes the config's.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Milli-CPU per slot.
    pub offer_cpu: Option<u64>,
    /// RAM MB per slot.
    pub offer_ram_mb: Option<u64>,
    /// GPUs per slot.
    pub offer_gpu: Option<u32>,
    /// Slots.
    pub offer_count: Option<u32>,
    /// Price (decimal DCN).
    pub price: Option<String>,
    /// Collateral (decimal DCN).
    pub collateral: Option<String>,
    /// Module allow-list.
    pub modules: Option<Vec<String>>,
    /// Trusted mediators.
    pub mediators: Option<Vec<Address>>,
    /// Test-only: report wrong results.
    pub fault_wrong_result: bool,
}

/// Builds the provider for `node` at `solver`, keeping its state under `state_dir`.
pub async fn build(
    settings: &Settings,
    node: &Node,
    solver: SolverClient,
    opts: ProviderOptions,
    state_dir: &Path,
) -> eyre::Result<Arc<ProviderService>> {
    let cfg = &settings.provider;
    std::fs::create_dir_all(state_dir).wrap_err_with(|| format!("creating {}", state_dir.display()))?;
    let count = opts.offer_count.unwrap_or(cfg.offer_count);
    if count == 0 {
        eyre::bail!("--offer-count must be at least 1");
    }
    let gpus = opts.offer_gpu.unwrap_or(cfg.offer_gpu);
    let machine = Machine::detect(state_dir, gpus > 0).wrap_err("--offer-gpu needs NVIDIA GPUs")?;
    let slot = machine.slot(
        count,
        opts.offer_cpu.unwrap_or(cfg.offer_cpu),
        opts.offer_ram_mb.unwrap_or(cfg.offer_ram_mb),
        gpus,
    )?;
    let price = parse_amount(opts.price.as_deref().unwrap_or(&cfg.price), "--price").map_err(eyre::Report::msg)?;
    let collateral = parse_amount(opts.collateral.as_deref().unwrap_or(&cfg.collateral), "--collateral")
        .map_err(eyre::Report::msg)?;
    let configured = opts.mediators.unwrap_or_else(|| settings.services.mediators.clone());
    let mediators = crate::discovery::find_mediators(&node.chain, &node.deployment.contracts, &configured).await?;

    let me = node.chain.from;
    // The instance label keeps two providers with one key (tests, a second data dir) from
    // removing each other's containers as leftovers.
    let labels = HashMap::from([
        ("dcn.provider".to_string(), me.to_string().to_lowercase()),
        ("dcn.instance".to_string(), instance_label(state_dir)),
    ]);
    let pool = if gpus > 0 { Some(GpuPool::new(machine.gpus.clone())) } else { None };
    let capacity = crate::types::Resources {
        cpu: slot.cpu * u64::from(count),
        ram_mb: slot.ram_mb * u64::from(count),
        gpus: slot.gpus * count,
        vram_mb: slot.vram_mb,
        disk_mb: slot.disk_mb * u64::from(count),
    };
    let executor = docker_executor(settings, capacity, pool, labels).await?;
    match executor.remove_leftovers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "removed job containers left by an earlier run"),
        Err(e) => tracing::warn!(error = %e, "cannot look for leftover job containers"),
    }
    let kv = KvStore::open(&state_dir.join("db")).wrap_err("opening the provider's database")?;

    let modules = opts.modules.unwrap_or_else(|| cfg.modules.clone());
    let metadata = serde_json::json!({
        "slot": slot, "slots": count, "price": price.to_string(), "collateral": collateral.to_string(),
        "modules": modules,
    })
    .to_string();
    crate::solver::chain::register(
        &node.chain,
        node.deployment.contracts.registry,
        crate::solver::chain::ROLE_PROVIDER,
        solver.url(),
        &metadata,
    )
    .await
    .wrap_err("registering the provider in DcnRegistry")?;

    tracing::info!(
        provider = %me,
        slots = count,
        cpu = slot.cpu,
        ram_mb = slot.ram_mb,
        gpus = slot.gpus,
        price = %crate::chain::units::format_amount(price),
        collateral = %crate::chain::units::format_amount(collateral),
        mediators = ?mediators,
        solver = %solver.url(),
        "provider ready"
    );
    let config = ProviderConfig {
        slot,
        slots: count,
        price,
        collateral,
        modules,
        mediators,
        offer_ttl_secs: cfg.offer_ttl_secs,
        limits: terms::Limits {
            allow_network: settings.executor.allow_network,
            min_result_margin_secs: cfg.min_result_margin_secs,
            max_judge_timeout_secs: cfg.max_judge_timeout_secs,
            max_mediation_timeout_secs: cfg.max_mediation_timeout_secs,
        },
        poll: Duration::from_millis(cfg.poll_ms.max(20)),
        work_dir: state_dir.join("jobs"),
        fault_wrong_result: opts.fault_wrong_result,
    };
    Ok(ProviderService::new(
        config,
        node.chain.clone(),
        node.signer.clone(),
        node.deployment.contracts,
        solver,
        Arc::new(executor),
        Arc::new(kv),
    ))
}

/// A short stable label for the service keeping its state in `state_dir`.
pub fn instance_label(state_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let dir = state_dir.canonicalize().unwrap_or_else(|_| state_dir.to_path_buf());
    hex::encode(&Sha256::digest(dir.to_string_lossy().as_bytes())[..8])
}
