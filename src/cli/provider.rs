//! `dcn provider`: flags → [`ProviderOverrides`], then `app::provider`.

use crate::config::Settings;
use crate::provider::ProviderOverrides;
use alloy::primitives::Address;
use clap::Args;

/// Sell this machine's CPU/GPU time. Posts resource offers to the solver (re-posting them
/// before they expire), checks and signs the deals it proposes, runs each job in a
/// sandboxed Docker container, uploads the result, submits its hash on chain and collects
/// the payment. Collateral is deposited into escrow when short. Deals in flight are kept
/// in RocksDB under <data-dir>/provider/<address>/ and resume after a restart. Unset
/// offer sizes are derived from the machine; offering more than it has is refused.
/// Stop it with Ctrl-C.
#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// Milli-CPU per job slot (1000 = one core) [default: config provider.offer_cpu; 0 = the machine's cores / slots]
    #[arg(long, value_name = "MILLI")]
    pub offer_cpu: Option<u64>,
    /// RAM per job slot in MB [default: config provider.offer_ram_mb; 0 = 80% of RAM / slots]
    #[arg(long, value_name = "MB")]
    pub offer_ram: Option<u64>,
    /// NVIDIA GPUs per job slot; each running job gets its own [default: config provider.offer_gpu, 0]
    #[arg(long, value_name = "N")]
    pub offer_gpu: Option<u32>,
    /// Jobs run at once (slots) [default: config provider.offer_count, 1]
    #[arg(long, value_name = "N")]
    pub offer_count: Option<u32>,
    /// Price per job in DCN, e.g. 1 or 0.5 [default: config provider.price, 1]
    #[arg(long, value_name = "DCN")]
    pub price: Option<String>,
    /// Collateral locked per deal in DCN; lost if no result comes or a mediator finds it wrong [default: config provider.collateral, 10]
    #[arg(long, value_name = "DCN")]
    pub collateral: Option<String>,
    /// Only run these modules (comma-separated: name, name@version, or the module file's sha256) [default: config provider.modules; empty = any]
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub modules: Option<Vec<String>>,
    /// Trusted mediators (comma-separated addresses) [default: config services.mediators / SERVICE_MEDIATORS, else the mediators the registry's owner approved]
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub mediators: Option<Vec<Address>>,
    /// The solver: a URL, or an address looked up in DcnRegistry [default: config services.solver / SERVICE_SOLVER, else the first solver the registry's owner approved]
    #[arg(long, value_name = "URL|ADDRESS")]
    pub solver: Option<String>,
    /// Test builds only: misbehave (wrong-result, skip-job), to exercise challenges
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true, value_name = "KIND")]
    pub fault: Option<crate::provider::config::Fault>,
}

impl ProviderArgs {
    /// The flags as overrides of the settings.
    pub fn overrides(&self) -> ProviderOverrides {
        #[cfg(feature = "fault-injection")]
        let fault = self.fault;
        #[cfg(not(feature = "fault-injection"))]
        let fault = None;
        ProviderOverrides {
            offer_cpu: self.offer_cpu,
            offer_ram_mb: self.offer_ram,
            offer_gpu: self.offer_gpu,
            offer_count: self.offer_count,
            price: self.price.clone(),
            collateral: self.collateral.clone(),
            modules: self.modules.clone(),
            mediators: self.mediators.clone(),
            solver: self.solver.clone(),
            fault,
        }
    }

    /// Runs `dcn provider` until Ctrl-C.
    pub async fn run(self, settings: &Settings) -> eyre::Result<()> {
        crate::app::provider::run(settings, &self.overrides()).await
    }
}
