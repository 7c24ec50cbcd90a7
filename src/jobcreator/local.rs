//! A module tried on this machine, without the network or the chain (`dcn run --local`):
//! what a module author runs before buying the job. The result bundle and its hash are
//! the ones any honest provider reproduces.

use crate::bundle::{self, BundleError};
use crate::clock::now_secs;
use crate::executor::{Executor, ExecutorError, RunOutcome};
use crate::types::JobSpec;
use alloy::primitives::B256;
use std::path::{Path, PathBuf};

/// A local run.
#[derive(Debug)]
pub struct LocalRun {
    /// What the job did.
    pub outcome: RunOutcome,
    /// The job's content hash.
    pub job_hash: B256,
    /// The result hash of its bundle.
    pub result_hash: B256,
    /// Why its bundle is an error bundle, as any provider would deliver it (the output is
    /// over the job's limit).
    pub replaced: Option<String>,
    /// Its directory (`outputs/`, `bundle.tar`).
    pub dir: PathBuf,
    /// The bundle.
    pub bundle: PathBuf,
}

/// Why a local run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The results directory could not be made.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The executor could not run the job.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The bundle could not be written.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// Runs `spec` on `executor` in a new directory under `results_dir`
/// (`local-<time>-<job>`) and packs its bundle.
pub async fn run_local(spec: &JobSpec, executor: &dyn Executor, results_dir: &Path) -> Result<LocalRun, LocalError> {
    let job_hash = spec.content_hash();
    let dir = results_dir.join(format!("local-{}-{}", now_secs(), &job_hash.to_string()[2..14]));
    std::fs::create_dir_all(&dir).map_err(|source| LocalError::Dir { path: dir.clone(), source })?;
    tracing::info!(module = %spec.module.name, job = %job_hash, dir = %dir.display(), "running locally");
    let outcome = executor.run(spec, &dir).await?;
    let bundle = dir.join("bundle.tar");
    // As a provider would deliver it: over the job's output limit, the error bundle.
    let packed = bundle::pack(outcome.results(), spec.output_limit_bytes(), &bundle)?;
    let result_hash = packed.hash;
    tracing::info!(
        exit_code = packed.exit_code,
        termination = ?outcome.termination,
        secs = format!("{:.2}", outcome.duration.as_secs_f64()),
        %result_hash,
        bundle = %bundle.display(),
        "job finished"
    );
    let replaced = outcome.over_limit.clone().or(packed.replaced);
    Ok(LocalRun { outcome, job_hash, result_hash, replaced, dir, bundle })
}
