//! `dcn run`: flags → [`RunOverrides`] and a [`RunRequest`], then `app::run`.

use crate::app::run::RunRequest;
use crate::config::Settings;
use crate::jobcreator::RunOverrides;
use clap::Args;
use std::path::PathBuf;

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
    /// The solver: a URL, or an address looked up in DcnRegistry [default: config services.solver / SERVICE_SOLVER, else the first solver the registry's owner approved]
    #[arg(long, value_name = "URL|ADDRESS")]
    pub solver: Option<String>,
    /// Most to pay for the job, in DCN [default: config job.max_price, 10]
    #[arg(long, value_name = "DCN")]
    pub max_price: Option<String>,
    /// Mediation fee paid if you challenge, in DCN [default: config job.mediation_fee, 1]
    #[arg(long, value_name = "DCN")]
    pub mediation_fee: Option<String>,
    /// Trusted mediators (comma-separated) [default: config services.mediators / SERVICE_MEDIATORS, else the mediators the registry's owner approved]
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
    /// Test builds only: misbehave (stop-before-create), to exercise the provider
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true, value_name = "KIND")]
    pub fault: Option<RunFault>,
}

/// How a test build's `dcn run` misbehaves.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFault {
    /// Record the signed deal, then stop without creating it on chain.
    StopBeforeCreate,
}

impl RunArgs {
    /// The flags as overrides of the settings.
    pub fn overrides(&self) -> RunOverrides {
        RunOverrides {
            max_price: self.max_price.clone(),
            mediation_fee: self.mediation_fee.clone(),
            mediators: self.mediators.clone(),
            match_timeout_secs: self.match_timeout,
            result_margin_secs: self.result_margin,
            solver: self.solver.clone(),
        }
    }

    /// Runs `dcn run`.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        let overrides = self.overrides();
        let request = RunRequest {
            module: self.module,
            inputs: self.inputs,
            challenge: self.challenge,
            results_dir: self.results_dir,
            json: self.json,
            #[cfg(feature = "fault-injection")]
            stop_before_create: self.fault == Some(RunFault::StopBeforeCreate),
            #[cfg(not(feature = "fault-injection"))]
            stop_before_create: false,
        };
        if self.local {
            crate::app::run::run_local_module(settings, request).await
        } else {
            crate::app::run::run_network(settings, request, &overrides).await
        }
    }
}
