//! The sections of the settings, one per command or concern, as the config file spells
//! them. `config.toml.sample` documents every key.

use crate::secret::Secret;
use alloy::primitives::Address;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// A named chain the network runs on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkProfile {
    /// JSON-RPC endpoint (http, https, ws or wss).
    pub rpc_url: String,
    /// The chain id the endpoint must report.
    pub chain_id: u64,
    /// Whether accounts without configured keys come from the development mnemonic
    /// (`test test … junk`): true only for local development chains.
    #[serde(default)]
    pub dev_accounts: bool,
    /// The network's `DcnRegistry`, which names its other contracts: with it, a machine
    /// joins the network without the record `dcn deploy` wrote on another machine.
    #[serde(default)]
    pub registry: Option<Address>,
}

/// Keys of this process's accounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeySettings {
    /// This service's private key (hex). Also `WEB3_PRIVATE_KEY`.
    pub private_key: Option<Secret>,
    /// A file holding this service's private key (as written by `dcn keys new`).
    pub key_file: Option<PathBuf>,
    /// The admin key used by `dcn deploy` and `dcn fund`; falls back to `private_key`.
    pub admin_private_key: Option<Secret>,
}

/// What `dcn fund` sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FundSettings {
    /// Ether each account is topped up to (decimal, in ETH).
    pub eth: String,
    /// Tokens each account is topped up to (decimal, in DCN).
    pub tokens: String,
    /// Accounts to fund; on a dev network, empty means the development role accounts.
    #[serde(deserialize_with = "addresses_from_list_or_csv")]
    pub accounts: Vec<Address>,
}

/// What `dcn deploy` sets up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploySettings {
    /// Account allowed to deliver job-board results; default: the solver account on a dev
    /// network, else the admin.
    #[serde(default)]
    pub job_board_operator: Option<Address>,
    /// Tokens the example CowsayClient pays per job (decimal, in DCN).
    pub cowsay_price: String,
    /// Least payment of a job-board request (decimal, in DCN); more than zero.
    pub job_board_min_payment: String,
    /// Least time a job-board request gives, seconds (1 to 30 days).
    pub job_board_min_timeout_secs: u64,
    /// Fewest mediators a deal names; 0: 1 on a development network, 3 elsewhere.
    pub min_mediators: u8,
    /// Least chance that a result is audited, parts per million (100000: 10%).
    pub min_audit_ppm: u32,
    /// Least mediation and audit fee (decimal, in DCN).
    pub min_mediation_fee: String,
    /// Least bond of a drawable mediator, and what an overturned verdict costs it (DCN).
    pub min_bond: String,
    /// What an appeal costs its appellant, refunded when the verdict is overturned (DCN).
    pub appeal_fee: String,
    /// Seconds after a verdict in which its loser may appeal (at most 7 days).
    pub appeal_window_secs: u32,
    /// What a drawn mediator that stays silent loses of its bond (DCN).
    pub silence_slash: String,
}

/// How jobs are sandboxed on this machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutorSettings {
    /// Whether modules that ask for network access get it.
    pub allow_network: bool,
    /// Most processes one job may run.
    pub pids_limit: i64,
    /// Size of a job's writable /tmp in MB.
    pub tmp_mb: u64,
    /// Whether modules that ask to run as root in their container (`run_as_root`) are run;
    /// otherwise jobs run as an unprivileged user.
    pub allow_root: bool,
    /// The OCI runtime registered with Docker that runs jobs: `runsc` runs them under
    /// gVisor's user-space kernel; empty: the engine's default (runc).
    #[serde(default)]
    pub runtime: String,
    /// How a job's /outputs is made: `loop` (a file system of the job's size, needs root),
    /// `bind` (a plain directory, measured only after the job), or `auto` (loop when root).
    pub outputs_fs: crate::types::OutputsFs,
    /// Largest image pulled to run a job, MiB (its layers as the registry sends them).
    pub max_image_mb: u64,
    /// Longest an image pull may take, seconds.
    pub pull_timeout_secs: u64,
}

impl ExecutorSettings {
    /// The runtime to ask Docker for, if not its default.
    pub fn runtime(&self) -> Option<String> {
        Some(self.runtime.trim().to_string()).filter(|r| !r.is_empty())
    }
}

/// Where modules come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModuleSettings {
    /// Directory searched for `<name>/module.toml` before the built-in modules.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// `dcn solver`: where it listens and its limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SolverSettings {
    /// Address and port the API binds.
    pub listen: String,
    /// URL clients reach it at, registered in `DcnRegistry`; default `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest JSON request body, bytes.
    pub max_body_bytes: usize,
    /// Largest result bundle, MB.
    pub max_result_mb: u64,
    /// Most result bundles kept and arriving, in all, MB.
    pub max_stored_results_mb: u64,
    /// Most open event streams (WebSockets), in all.
    pub max_subscriptions: usize,
    /// Most open event streams from one client address.
    pub max_subscriptions_per_address: usize,
    /// Most open offers per account.
    pub max_open_offers: usize,
    /// Most open offers from everyone.
    pub max_open_offers_total: usize,
    /// Signed requests per second per account.
    pub rate_per_sec: f64,
    /// Signed requests an account may burst.
    pub rate_burst: f64,
    /// Requests per second per client address (an IPv4 address or an IPv6 /64).
    pub ip_rate_per_sec: f64,
    /// Requests a client address may burst.
    pub ip_rate_burst: f64,
    /// Furthest accepted offer expiry, seconds ahead.
    pub offer_max_ahead_secs: u64,
    /// Furthest accepted request-signature expiry, seconds ahead.
    pub request_max_ahead_secs: u64,
    /// Time a provider has to sign a proposed deal, seconds.
    pub sign_timeout_secs: u64,
    /// Time a job creator has to create a signed deal on chain, seconds.
    pub create_timeout_secs: u64,
    /// How long a settled deal's result bundle is kept, hours.
    pub result_retention_hours: u64,
    /// How often the chain is read for deal states, milliseconds.
    pub chain_poll_ms: u64,
    /// How long an offer owner's free escrow, read from the chain, is used, seconds; the
    /// escrow of providers with open offers is read again this often.
    pub escrow_cache_secs: u64,
}

/// Where clients find the network's services.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceSettings {
    /// The solver: an address (looked up in `DcnRegistry`) or a URL; default: the
    /// registry's solver. Also `SERVICE_SOLVER`.
    #[serde(default)]
    pub solver: Option<String>,
    /// Mediators trusted by this account; empty: every mediator in `DcnRegistry`.
    /// Also `SERVICE_MEDIATORS` (comma-separated).
    #[serde(deserialize_with = "addresses_from_list_or_csv")]
    pub mediators: Vec<Address>,
}

/// `dcn provider`: what it offers and what deal terms it signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderSettings {
    /// Milli-CPU per slot; 0: the whole machine divided by `offer_count`.
    pub offer_cpu: u64,
    /// RAM per slot in MB; 0: 80% of the machine's RAM divided by `offer_count`.
    pub offer_ram_mb: u64,
    /// GPUs per slot.
    pub offer_gpu: u32,
    /// Jobs run at once (slots).
    pub offer_count: u32,
    /// Price per job (decimal DCN).
    pub price: String,
    /// Collateral locked per deal (decimal DCN).
    pub collateral: String,
    /// Modules this provider runs (names, `name@version` or module file sha256); empty: any.
    #[serde(deserialize_with = "strings_from_list_or_csv")]
    pub modules: Vec<String>,
    /// Lifetime of a posted offer; it is re-posted when a quarter of it is left.
    pub offer_ttl_secs: u64,
    /// A deal's result timeout must exceed the job's own timeout by at least this.
    pub min_result_margin_secs: u64,
    /// Longest judge timeout signed (the payment waits this long at most).
    pub max_judge_timeout_secs: u64,
    /// Longest mediation timeout signed.
    pub max_mediation_timeout_secs: u64,
    /// Longest time a signature is good for before its deal is created: the provider
    /// refuses deals whose creation deadline is further away, and watches each signed deal
    /// until its deadline.
    pub max_create_window_secs: u64,
    /// Longest job timeout signed (a job may hold a slot this long).
    pub max_job_timeout_secs: u64,
    /// Largest job spec signed, bytes of its canonical JSON.
    pub max_spec_bytes: u64,
    /// Largest job output delivered, MB: a job whose output limit is over it is not signed.
    pub max_output_mb: u64,
    /// How often the chain is read for deal states, milliseconds.
    pub poll_ms: u64,
}

/// `dcn run`: the terms of job offers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSettings {
    /// Most a job may cost (decimal DCN).
    pub max_price: String,
    /// Fee paid to a mediator on a challenge (decimal DCN).
    pub mediation_fee: String,
    /// Fee paid to a mediator when the result is drawn for an audit (decimal DCN); locked
    /// with the price and returned when no audit is drawn.
    pub audit_fee: String,
    /// Chance that the result is audited, parts per million (100000: 10%). With the price
    /// p and the provider's collateral c, a deal is bought only if a fake loses its
    /// provider money in expectation: audit_ppm/10^6 · (p + c) > p.
    pub audit_ppm: u32,
    /// Seconds to wait for a provider before the offer is cancelled.
    pub match_timeout_secs: u64,
    /// The result timeout is the module's timeout plus this many seconds.
    pub result_margin_secs: u64,
    /// Seconds the job creator has to accept or challenge.
    pub judge_timeout_secs: u64,
    /// Seconds the mediator has to rule.
    pub mediation_timeout_secs: u64,
    /// How often the chain is read while waiting, milliseconds.
    pub poll_ms: u64,
}

/// `dcn mediator`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediatorSettings {
    /// How often the chain is read for challenges, milliseconds.
    pub poll_ms: u64,
}

/// `dcn jobboard`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobBoardSettings {
    /// How often the chain is read for job requests, milliseconds.
    pub poll_ms: u64,
    /// Least payment a request must offer before a deal is bought for it, DCN.
    pub min_payment: String,
}

/// `dcn dev`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevSettings {
    /// Port of the local chain; if taken, a free one is used (and printed).
    pub chain_port: u16,
    /// EVM hardfork of the local chain (`paris`, `shanghai`, `cancun`, `prague`, `osaka`);
    /// unset: anvil's latest. The contracts are compiled for `paris`, so each runs them.
    #[serde(default)]
    pub hardfork: Option<String>,
}

pub(super) fn addresses_from_list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Address>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<Address>),
        Csv(String),
    }
    match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(v) => Ok(v),
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect(),
    }
}

fn strings_from_list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(v) => v,
        ListOrCsv::Csv(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    })
}
