//! `dcn run`.

use crate::bundle;
use crate::config::Settings;
use crate::executor::docker::{DockerConfig, DockerExecutor};
use crate::executor::gpu::{self, GpuPool};
use crate::executor::{Executor, Termination};
use crate::module::{parse_inputs, resolve::Resolver};
use clap::Args;
use eyre::WrapErr;
use std::io::Write;
use std::path::PathBuf;

/// Run a module. With --local, runs it on this machine's executor, with no network or
/// chain: for module authors. Prints the job's stdout and writes the result bundle and
/// outputs under ./dcn-results/.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Module: a built-in name (cowsay, write-files, sandbox-probe, nvidia-smi), a path to
    /// a module directory or module.toml, or git+URL#REF
    pub module: String,
    /// Input as Key=Value; repeat for several
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Run on this machine's Docker executor (buying a job on the network comes with
    /// `dcn provider` and the solver)
    #[arg(long, required = true)]
    pub local: bool,
    /// Where to write results [default: ./dcn-results]
    #[arg(long, value_name = "DIR", default_value = "dcn-results")]
    pub results_dir: PathBuf,
    /// Print a JSON summary on stdout instead of the job's output
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// Runs `dcn run`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let resolver =
            Resolver { override_dir: settings.modules.dir.clone(), cache_dir: settings.data_dir().join("modules") };
        let module = resolver.resolve(&self.module)?;
        let spec = module.job_spec(&parse_inputs(&self.inputs)?)?;
        let job_hash = spec.content_hash();

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

        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let dir = self.results_dir.join(format!("local-{stamp}-{}", &job_hash.to_string()[2..14]));
        std::fs::create_dir_all(&dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
        tracing::info!(module = %spec.module.name, job = %job_hash, dir = %dir.display(), "running locally");
        let outcome = executor.run(&spec, &dir).await?;
        let bundle_path = dir.join("bundle.tar");
        let result_hash = bundle::write_bundle(&outcome.results(), &bundle_path)?;
        tracing::info!(
            exit_code = outcome.exit_code,
            termination = ?outcome.termination,
            secs = format!("{:.2}", outcome.duration.as_secs_f64()),
            %result_hash,
            bundle = %bundle_path.display(),
            "job finished"
        );

        if self.json {
            let summary = serde_json::json!({
                "module": spec.module,
                "job_hash": job_hash,
                "exit_code": outcome.exit_code,
                "termination": outcome.termination,
                "duration_secs": outcome.duration.as_secs_f64(),
                "result_hash": result_hash,
                "bundle": bundle_path,
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
            Termination::TimedOut => {
                eyre::bail!("the job ran past its {} s timeout and was killed", spec.timeout_secs)
            }
        }
    }
}
