//! `dcn run`.

use crate::bundle;
use crate::chain::units::{format_amount, parse_amount};
use crate::chain::DevRole;
use crate::config::Settings;
use crate::discovery::find_mediators;
use crate::executor::docker::{DockerConfig, DockerExecutor};
use crate::executor::gpu::{self, GpuPool};
use crate::executor::{Executor, Termination};
use crate::jobcreator::{JobCreator, JobTerms, Progress, Step};
use crate::module::{parse_inputs, resolve::Resolver};
use crate::node::Node;
use clap::Args;
use eyre::WrapErr;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shows the steps of a job on stderr: a spinner per step on a terminal, finished with
/// its time; a plain line per step otherwise.
struct Reporter {
    started: Instant,
    current: Mutex<Option<(Step, Instant, Option<ProgressBar>)>>,
    tty: bool,
}

impl Reporter {
    fn new() -> Self {
        Self { started: Instant::now(), current: Mutex::new(None), tty: std::io::stderr().is_terminal() }
    }

    fn close(&self, mark: &str) {
        if let Some((step, at, bar)) = self.current.lock().expect("lock").take() {
            let line = format!("{mark} {:<16} {:>7.2} s", step.label(), at.elapsed().as_secs_f64());
            match bar {
                Some(bar) => {
                    bar.set_style(
                        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.finish_with_message(line);
                }
                None => eprintln!("[dcn] {line}"),
            }
        }
    }

    fn done(&self) {
        self.close("✔");
        if !self.tty {
            eprintln!("[dcn] total {:.2} s", self.started.elapsed().as_secs_f64());
        }
    }

    fn fail(&self) {
        self.close("✘");
    }
}

impl Progress for Reporter {
    fn step(&self, step: Step, detail: &str) {
        self.close("✔");
        let bar = if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<16} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(step.label());
            bar.set_message(detail.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            eprintln!("[dcn] {}: {detail}", step.label());
            None
        };
        *self.current.lock().expect("lock") = Some((step, Instant::now(), bar));
    }
}

/// Buy a job on the network: resolves the module, deposits the price into escrow when
/// short, posts a job offer, creates the matched deal on chain, waits for the provider's
/// result, downloads and verifies it against the hash on chain, accepts it, and prints
/// the job's stdout. The bundle and outputs go under ./dcn-results/<deal-id>/. Progress
/// goes to stderr. With --local, runs the module on this machine instead, with no
/// network or chain (for module authors).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Module: a built-in name (cowsay, write-files, sandbox-probe, nvidia-smi), a path to
    /// a module directory or module.toml, or git+URL#REF
    pub module: String,
    /// Input as Key=Value; repeat for several
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Run on this machine's Docker executor, without the network
    #[arg(long)]
    pub local: bool,
    /// Challenge the result instead of accepting it, and wait for the mediator's verdict
    #[arg(long, conflicts_with = "local")]
    pub challenge: bool,
    /// The solver: a URL, or an address looked up in DcnRegistry [default: config services.solver / SERVICE_SOLVER, else the registered solver]
    #[arg(long, value_name = "URL|ADDRESS")]
    pub solver: Option<String>,
    /// Most to pay for the job, in DCN [default: config job.max_price, 10]
    #[arg(long, value_name = "DCN")]
    pub max_price: Option<String>,
    /// Mediation fee paid if you challenge, in DCN [default: config job.mediation_fee, 1]
    #[arg(long, value_name = "DCN")]
    pub mediation_fee: Option<String>,
    /// Trusted mediators (comma-separated) [default: config services.mediators / SERVICE_MEDIATORS, else every registered mediator]
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub mediators: Option<Vec<alloy::primitives::Address>>,
    /// Seconds to wait for a provider [default: config job.match_timeout_secs, 60]
    #[arg(long, value_name = "SECS")]
    pub match_timeout: Option<u64>,
    /// Seconds the provider has beyond the module's timeout to deliver [default: config job.result_margin_secs, 120]
    #[arg(long, value_name = "SECS")]
    pub result_margin: Option<u64>,
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
        if self.local {
            self.run_local(settings).await
        } else {
            self.run_network(settings).await
        }
    }

    async fn run_network(self, settings: &Settings) -> eyre::Result<()> {
        let resolver =
            Resolver { override_dir: settings.modules.dir.clone(), cache_dir: settings.data_dir().join("modules") };
        let module = resolver.resolve(&self.module)?;
        let spec = module.job_spec(&parse_inputs(&self.inputs)?)?;
        let node = Node::connect(settings, DevRole::JobCreator).await?;
        let solver = node.solver(settings, self.solver.as_deref()).await?;
        let cfg = &settings.job;
        let amount = |flag: &Option<String>, default: &str, name: &str| {
            parse_amount(flag.as_deref().unwrap_or(default), name).map_err(eyre::Report::msg)
        };
        let configured = self.mediators.clone().unwrap_or_else(|| settings.services.mediators.clone());
        let mediators = find_mediators(&node.chain, &node.deployment.contracts, &configured).await?;
        let creator = JobCreator {
            chain: node.chain.clone(),
            signer: node.signer.clone(),
            contracts: node.deployment.contracts,
            solver,
            terms: JobTerms {
                max_price: amount(&self.max_price, &cfg.max_price, "--max-price")?,
                mediation_fee: amount(&self.mediation_fee, &cfg.mediation_fee, "--mediation-fee")?,
                mediators,
                match_timeout: Duration::from_secs(self.match_timeout.unwrap_or(cfg.match_timeout_secs)),
                result_margin_secs: self.result_margin.unwrap_or(cfg.result_margin_secs),
                judge_timeout_secs: cfg.judge_timeout_secs,
                mediation_timeout_secs: cfg.mediation_timeout_secs,
                poll: Duration::from_millis(cfg.poll_ms.max(20)),
            },
            results_dir: self.results_dir.clone(),
        };
        let progress = Reporter::new();
        let created = creator.place(&spec, &progress).await;
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                progress.fail();
                return Err(e);
            }
        };
        let outcome = match creator.finish(&created, self.challenge, &progress).await {
            Ok(o) => o,
            Err(e) => {
                progress.fail();
                return Err(e.wrap_err(format!("deal {} (created on chain)", created.deal.id)));
            }
        };
        progress.done();
        if self.json {
            let summary = serde_json::json!({
                "deal_id": outcome.deal_id,
                "module": spec.module,
                "job_hash": spec.content_hash(),
                "provider": outcome.provider,
                "price": format_amount(outcome.price),
                "price_units": outcome.price.to_string(),
                "state": outcome.state,
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
        if outcome.state == "timed_out_no_result" {
            eyre::bail!("{}", outcome.summary);
        }
        Ok(())
    }

    async fn run_local(self, settings: &Settings) -> eyre::Result<()> {
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
