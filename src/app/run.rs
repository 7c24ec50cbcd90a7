//! `dcn run`'s composition root: resolves the module, connects the job creator's account,
//! finds the solver and mediators, places the job and follows it to its end with the
//! terminal progress, then prints the job's stdout (or a JSON summary). `--local` runs the
//! module on this machine's Docker executor instead.

use super::node::Account;
use crate::chain::{DealState, DevRole};
use crate::config::Settings;
use crate::executor::docker::{DockerConfig, DockerExecutor};
use crate::executor::gpu::{self, GpuPool};
use crate::executor::Termination;
use crate::jobcreator::local::run_local;
use crate::jobcreator::{JobCreator, JobCreatorConfig, RunOverrides, TerminalProgress};
use crate::module::{parse_inputs, resolve::Resolver};
use crate::types::JobSpec;
use crate::units::format_amount;
use eyre::WrapErr;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// What to run and how to report it.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The module reference (name, path or `git+URL#REF`).
    pub module: String,
    /// `Key=Value` inputs.
    pub inputs: Vec<String>,
    /// Challenge the result instead of accepting it.
    pub challenge: bool,
    /// Where results go.
    pub results_dir: PathBuf,
    /// Print a JSON summary instead of the job's output.
    pub json: bool,
}

fn job_spec(settings: &Settings, req: &RunRequest) -> eyre::Result<JobSpec> {
    let resolver =
        Resolver { override_dir: settings.modules.dir.clone(), cache_dir: settings.data_dir().join("modules") };
    let module = resolver.resolve(&req.module)?;
    Ok(module.job_spec(&parse_inputs(&req.inputs)?)?)
}

/// Runs `dcn run` on the network.
pub async fn run_network(settings: &Settings, req: RunRequest, overrides: &RunOverrides) -> eyre::Result<()> {
    let cfg = JobCreatorConfig::resolve(settings, overrides)?;
    let spec = job_spec(settings, &req)?;
    let account = Account::connect(settings, DevRole::JobCreator).await?;
    let solver = account.solver(cfg.solver.as_deref()).await?;
    let mediators = account.mediators(&cfg.mediators).await?;
    let outcome = super::one_shot("run", move |tasks| async move {
        let creator = JobCreator {
            terms: cfg.terms,
            mediators,
            results_dir: req.results_dir.clone(),
            signer: account.signer.clone(),
            chain: account.chain(),
            solver: Arc::new(solver),
            token: tasks.token().clone(),
        };
        let progress = TerminalProgress::new();
        let created = creator.place(&spec, &progress).await.inspect_err(|_| progress.fail())?;
        let outcome = creator.finish(&created, req.challenge, &progress).await.map_err(|e| {
            progress.fail();
            eyre::Report::new(e).wrap_err(format!("deal {} (created on chain)", created.deal.id))
        })?;
        progress.done();
        Ok((outcome, spec, req))
    })
    .await?;
    let (outcome, spec, req) = outcome;
    if req.json {
        let summary = serde_json::json!({
            "deal_id": outcome.deal_id,
            "module": spec.module,
            "job_hash": spec.content_hash(),
            "provider": outcome.provider,
            "price": format_amount(outcome.price),
            "price_units": outcome.price.to_string(),
            "state": outcome.state.name(),
            "result_hash": outcome.result_hash,
            "exit_code": outcome.exit_code,
            "txs": outcome.txs.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "dir": outcome.dir,
            "bundle": outcome.dir.as_ref().map(|d| d.join("bundle.tar")),
            "outputs": outcome.dir.as_ref().map(|d| d.join("outputs")),
            "summary": outcome.summary,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        std::io::stdout().write_all(&outcome.stdout)?;
        std::io::stdout().flush()?;
        eprintln!("{}", outcome.summary);
        if let Some(dir) = &outcome.dir {
            eprintln!("results in {}", dir.display());
        }
    }
    if outcome.state == DealState::TimedOutNoResult {
        eyre::bail!("{}", outcome.summary);
    }
    Ok(())
}

/// Runs `dcn run --local`: the module on this machine, with no network or chain.
pub async fn run_local_module(settings: &Settings, req: RunRequest) -> eyre::Result<()> {
    let spec = job_spec(settings, &req)?;
    let gpus = if spec.resources.gpus > 0 {
        let found = gpu::detect().wrap_err_with(|| format!("module `{}` needs GPUs", spec.module.name))?;
        Some(GpuPool::new(found))
    } else {
        None
    };
    let config = DockerConfig {
        allow_network: settings.executor.allow_network,
        pids_limit: settings.executor.pids_limit,
        tmp_mb: settings.executor.tmp_mb,
        ..Default::default()
    };
    let executor = DockerExecutor::connect(config, gpus).await?;
    let run = run_local(&spec, &executor, &req.results_dir).await?;
    let outcome = &run.outcome;
    if req.json {
        let summary = serde_json::json!({
            "module": spec.module,
            "job_hash": run.job_hash,
            "exit_code": outcome.exit_code,
            "termination": outcome.termination,
            "duration_secs": outcome.duration.as_secs_f64(),
            "result_hash": run.result_hash,
            "bundle": run.bundle,
            "outputs": outcome.outputs_dir,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        std::io::stdout().write_all(&outcome.stdout)?;
        std::io::stderr().write_all(&outcome.stderr)?;
    }
    match outcome.termination {
        Termination::Exited if outcome.exit_code == 0 => Ok(()),
        Termination::Exited => eyre::bail!("the job exited with code {}", outcome.exit_code),
        Termination::OutOfMemory => eyre::bail!(
            "the job ran out of memory (limit {} MB); raise resources.ram_mb in the module",
            spec.resources.ram_mb
        ),
        Termination::TimedOut => eyre::bail!("the job ran past its {} s timeout and was killed", spec.timeout_secs),
    }
}
