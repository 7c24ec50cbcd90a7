//! `dcn run`'s composition root: resolves the module, connects the job creator's account,
//! finds the solver and mediators, places the job and follows it to its end with the
//! terminal progress, then prints the job's stdout (or a JSON summary). `--local` runs the
//! module on this machine's Docker executor instead.

use super::node::Account;
use crate::chain::{DealState, DevRole};
use crate::clock::now_secs;
use crate::config::Settings;
use crate::executor::docker::DockerExecutor;
use crate::executor::gpu::{self, GpuPool};
use crate::executor::Termination;
use crate::jobcreator::journal::{Ended, Entry, Journal};
use crate::jobcreator::local::run_local;
use crate::jobcreator::{JobCreator, JobCreatorConfig, Outcome, RunOverrides, TerminalProgress};
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
    /// Test builds only (`--fault stop-before-create`): stop once the signed deal is in
    /// the journal, as a job creator that walks away or creates the deal by hand later.
    pub stop_before_create: bool,
}

fn job_spec(settings: &Settings, req: &RunRequest) -> eyre::Result<JobSpec> {
    resolve_job(settings, &req.module, &req.inputs)
}

/// The job `module` with `inputs` (`Key=Value`) makes, as `dcn run` would buy it: its
/// content hash is what a job-board request commits to (`dcn module hash`).
pub fn resolve_job(settings: &Settings, module: &str, inputs: &[String]) -> eyre::Result<JobSpec> {
    let resolver =
        Resolver { override_dir: settings.modules.dir.clone(), cache_dir: settings.data_dir().join("modules") };
    let module = resolver.resolve(module)?;
    Ok(module.job_spec(&parse_inputs(inputs)?)?)
}

/// Runs `dcn run` on the network. The matched deal is recorded in the account's journal
/// before it goes on chain, so `dcn jobs resume` can finish it if this process is killed.
pub async fn run_network(settings: &Settings, req: RunRequest, overrides: &RunOverrides) -> eyre::Result<()> {
    let cfg = JobCreatorConfig::resolve(settings, overrides)?;
    let spec = job_spec(settings, &req)?;
    let account = Account::connect(settings, DevRole::JobCreator).await?;
    let solver = account.solver(cfg.solver.as_deref()).await?;
    let mediators = account.mediators(&cfg.mediators).await?;
    let journal = Journal::new(settings.data_dir(), account.client.network.chain_id, account.address());
    let results_dir = std::path::absolute(&req.results_dir)
        .wrap_err_with(|| format!("resolving the results directory {}", req.results_dir.display()))?;
    let challenge = req.challenge;
    let req_stop = req.stop_before_create;
    let job = spec.clone();
    let outcome = super::one_shot("run", move |tasks| async move {
        let spec = job;
        let creator = JobCreator {
            terms: cfg.terms,
            mediators,
            results_dir: results_dir.clone(),
            signer: account.signer.clone(),
            chain: account.chain(),
            solver: Arc::new(solver),
            token: tasks.token().clone(),
            follow_audits: false,
        };
        let progress = TerminalProgress::new();
        let deal = creator.match_deal(&spec, &progress).await.inspect_err(|_| progress.fail())?;
        let _following = journal.follow(deal.id)?;
        // Before `createDeal`: the deal's events come after this block.
        let since_block = creator.chain.block_number().await?;
        let mut entry = Entry {
            deal: deal.clone(),
            spec: spec.clone(),
            create_tx: None,
            since_block,
            challenge,
            results_dir,
            placed_at: now_secs(),
            ended: None,
        };
        journal.save(&entry)?;
        if req_stop {
            progress.fail();
            eyre::bail!("fault injection: stopped before createDeal; `dcn jobs resume {}` creates it", deal.id);
        }
        let created = creator.create(deal, &spec).await.inspect_err(|_| progress.fail())?;
        entry.create_tx = Some(created.create_tx);
        entry.since_block = created.created_block;
        journal.save(&entry)?;
        follow_to_end(&creator, &journal, &mut entry, &progress).await
    })
    .await?;
    report(&outcome, &spec, req.json)
}

/// Follows `entry`'s created deal to its end with `creator`, then records how it ended.
pub(super) async fn follow_to_end(
    creator: &JobCreator,
    journal: &Journal,
    entry: &mut Entry,
    progress: &TerminalProgress,
) -> eyre::Result<Outcome> {
    let id = entry.deal.id;
    let outcome = creator.finish(&entry.created(), entry.challenge, progress).await.map_err(|e| {
        progress.fail();
        eyre::Report::new(e).wrap_err(format!("deal {id} (created on chain; `dcn jobs resume {id}` takes it up again)"))
    })?;
    progress.done();
    entry.ended = Some(Ended { state: Some(outcome.state), summary: outcome.summary.clone() });
    journal.save(entry)?;
    Ok(outcome)
}

/// Prints how the job ended: its stdout and the summary, or a JSON summary; an error when
/// the provider delivered nothing.
pub(super) fn report(outcome: &Outcome, spec: &JobSpec, json: bool) -> eyre::Result<()> {
    if json {
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
    let executor = DockerExecutor::connect(crate::app::node::executor_config(settings), gpus).await?;
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
            "error_bundle": run.replaced,
            "bundle": run.bundle,
            "outputs": outcome.outputs_dir,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        std::io::stdout().write_all(&outcome.stdout)?;
        std::io::stderr().write_all(&outcome.stderr)?;
    }
    if let Some(why) = &run.replaced {
        eyre::bail!("{why}: a provider would deliver an error bundle for this job; raise resources.disk_mb in the module or write less");
    }
    match outcome.termination {
        Termination::Exited if outcome.exit_code == 0 => Ok(()),
        Termination::Exited => eyre::bail!("the job exited with code {}", outcome.exit_code),
        Termination::OutOfMemory => eyre::bail!(
            "the job ran out of memory (limit {} MB); raise resources.ram_mb in the module",
            spec.resources.ram_mb
        ),
        Termination::TimedOut => eyre::bail!("the job ran past its {} s timeout and was killed", spec.timeout_secs),
        Termination::OutputOverLimit => eyre::bail!(
            "the job wrote more than {} MiB to stdout and was stopped; write large results to /outputs",
            crate::bundle::MAX_STDOUT_BYTES >> 20
        ),
    }
}
