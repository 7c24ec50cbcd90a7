//! Configuration: loading and precedence.
//!
//! Layers, lowest first: built-in defaults ([`DEFAULTS`]) < the config file (`--config`,
//! default `~/.dcn/config.toml`) < the operators' compat env names (`WEB3_RPC_URL`,
//! `WEB3_CHAIN_ID`, `WEB3_PRIVATE_KEY`) < `DCN_*` env vars (`__` separates sections:
//! `DCN_KEYS__PRIVATE_KEY`) < command-line flags ([`Overrides`]). `config.toml.sample`
//! documents every key. Start at [`Settings::load`].

use crate::secret::{redact_url, Secret};
use alloy::primitives::Address;
use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The built-in defaults, as TOML: the first layer.
pub const DEFAULTS: &str = r#"
network = "geth"
log_format = "pretty"

[networks.geth]
rpc_url = "http://127.0.0.1:8546"
chain_id = 1337
dev_accounts = true

[fund]
eth = "10"
tokens = "10000"
accounts = []

[deploy]
cowsay_price = "1"

[executor]
allow_network = false
pids_limit = 256
tmp_mb = 64

[modules]

[solver]
listen = "127.0.0.1:8080"
max_body_bytes = 1048576
max_result_mb = 1024
max_open_offers = 100
rate_per_sec = 50
rate_burst = 100
offer_max_ahead_secs = 86400
request_max_ahead_secs = 300
sign_timeout_secs = 60
create_timeout_secs = 300
chain_poll_ms = 1000

[services]
mediators = []

[provider]
offer_cpu = 0
offer_ram_mb = 0
offer_gpu = 0
offer_count = 1
price = "1"
collateral = "2"
modules = []
offer_ttl_secs = 600
min_result_margin_secs = 10
max_judge_timeout_secs = 86400
max_mediation_timeout_secs = 86400
poll_ms = 250

[job]
max_price = "10"
mediation_fee = "1"
match_timeout_secs = 60
result_margin_secs = 120
judge_timeout_secs = 300
mediation_timeout_secs = 600
poll_ms = 200

[mediator]
poll_ms = 500

[dev]
chain_port = 8546
"#;

/// Errors in loading or resolving configuration; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` is not there.
    #[error("config file {0} does not exist (create it from config.toml.sample, or drop --config)")]
    MissingFile(PathBuf),
    /// A layer did not parse or a value has the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    /// The selected network has no profile.
    #[error(
        "unknown network `{name}` (known: {known}); add [networks.{name}] with rpc_url and chain_id to \
         your config file, or pass both --rpc-url and --chain-id"
    )]
    UnknownNetwork {
        /// The name asked for.
        name: String,
        /// The profiles there are.
        known: String,
    },
    /// No home directory to put `~/.dcn` in.
    #[error("cannot find a home directory for the data dir: set HOME or pass --data-dir")]
    NoHome,
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

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
    /// Most open offers per account.
    pub max_open_offers: usize,
    /// Signed requests per second per account.
    pub rate_per_sec: f64,
    /// Signed requests an account may burst.
    pub rate_burst: f64,
    /// Furthest accepted offer expiry, seconds ahead.
    pub offer_max_ahead_secs: u64,
    /// Furthest accepted request-signature expiry, seconds ahead.
    pub request_max_ahead_secs: u64,
    /// Time a provider has to sign a proposed deal, seconds.
    pub sign_timeout_secs: u64,
    /// Time a job creator has to create a signed deal on chain, seconds.
    pub create_timeout_secs: u64,
    /// How often the chain is read for deal states, milliseconds.
    pub chain_poll_ms: u64,
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
    /// Modules this provider runs (names); empty: any.
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

/// `dcn dev`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevSettings {
    /// Port of the local chain; if taken, a free one is used (and printed).
    pub chain_port: u16,
}

/// The whole resolved configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Name of the network profile in use.
    pub network: String,
    /// Overrides the selected profile's RPC URL (`--rpc-url`, `WEB3_RPC_URL`).
    #[serde(default)]
    pub rpc_url: Option<String>,
    /// Overrides the selected profile's chain id (`--chain-id`, `WEB3_CHAIN_ID`).
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// Where dcn keeps deployments, keys and state; default `~/.dcn`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    pub log_format: LogFormat,
    /// Account keys.
    #[serde(default)]
    pub keys: KeySettings,
    /// Known networks by name.
    pub networks: BTreeMap<String, NetworkProfile>,
    /// `dcn fund` amounts and accounts.
    pub fund: FundSettings,
    /// `dcn deploy` wiring.
    pub deploy: DeploySettings,
    /// Job sandbox.
    pub executor: ExecutorSettings,
    /// Module resolution.
    #[serde(default)]
    pub modules: ModuleSettings,
    /// The solver server.
    pub solver: SolverSettings,
    /// Where the services are.
    #[serde(default)]
    pub services: ServiceSettings,
    /// `dcn provider`.
    pub provider: ProviderSettings,
    /// `dcn run`.
    pub job: JobSettings,
    /// `dcn mediator`.
    pub mediator: MediatorSettings,
    /// `dcn dev`.
    pub dev: DevSettings,
}

/// Values from command-line flags: the top layer. `None` leaves the layer below.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`: an explicit config file, which must exist.
    pub config_file: Option<PathBuf>,
    /// `--network`.
    pub network: Option<String>,
    /// `--rpc-url`.
    pub rpc_url: Option<String>,
    /// `--chain-id`.
    pub chain_id: Option<u64>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// The network a command talks to, after overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedNetwork {
    /// Profile name (also names the deployment record).
    pub name: String,
    /// JSON-RPC endpoint; print it through [`ResolvedNetwork::display_url`].
    #[serde(serialize_with = "serialize_redacted_url")]
    pub rpc_url: String,
    /// Expected chain id.
    pub chain_id: u64,
    /// Whether the development mnemonic supplies missing keys.
    pub dev_accounts: bool,
}

impl ResolvedNetwork {
    /// The RPC URL with credentials removed, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.rpc_url)
    }
}

fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

fn addresses_from_list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Address>, D::Error> {
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

impl Settings {
    /// Loads the settings from every layer. `env` is the process environment (passed in
    /// so that tests need not change the real one).
    pub fn load(overrides: &Overrides, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));

        match &overrides.config_file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.clone())),
            Some(path) => builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml)),
            None => {
                if let Some(home) = home_dir(env) {
                    let path = home.join(".dcn").join("config.toml");
                    builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(false));
                }
            }
        }

        let compat: config::Map<String, String> = [
            ("WEB3_RPC_URL", "rpc_url"),
            ("WEB3_CHAIN_ID", "chain_id"),
            ("WEB3_PRIVATE_KEY", "keys.private_key"),
            ("SERVER_URL", "solver.public_url"),
            ("SERVICE_SOLVER", "services.solver"),
            ("SERVICE_MEDIATORS", "services.mediators"),
        ]
        .into_iter()
        .filter_map(|(var, key)| env.get(var).filter(|v| !v.is_empty()).map(|v| (key.to_string(), v.clone())))
        .collect();
        // Already in dotted form: no prefix, no separator translation.
        builder = builder.add_source(Environment::default().source(Some(compat)));

        let dcn_env: config::Map<String, String> =
            env.iter().filter(|(k, _)| k.starts_with("DCN_")).map(|(k, v)| (k.clone(), v.clone())).collect();
        builder = builder.add_source(
            Environment::with_prefix("DCN")
                .prefix_separator("_")
                .separator("__")
                .ignore_empty(true)
                .source(Some(dcn_env)),
        );

        builder = builder
            .set_override_option("network", overrides.network.clone())?
            .set_override_option("rpc_url", overrides.rpc_url.clone())?
            .set_override_option("chain_id", overrides.chain_id)?
            .set_override_option("data_dir", overrides.data_dir.as_ref().map(|p| p.display().to_string()))?
            .set_override_option(
                "log_format",
                overrides.log_format.map(|f| if f == LogFormat::Json { "json" } else { "pretty" }),
            )?;

        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if settings.data_dir.is_none() {
            settings.data_dir = Some(home_dir(env).ok_or(ConfigError::NoHome)?.join(".dcn"));
        }
        Ok(settings)
    }

    /// The network in use, with `rpc_url`/`chain_id` overrides applied. An unknown name
    /// is allowed when both overrides are given (an ad-hoc network).
    pub fn network(&self) -> Result<ResolvedNetwork, ConfigError> {
        let (rpc_url, chain_id, dev_accounts) = match (self.networks.get(&self.network), &self.rpc_url, self.chain_id) {
            (Some(p), url, id) => {
                (url.clone().unwrap_or_else(|| p.rpc_url.clone()), id.unwrap_or(p.chain_id), p.dev_accounts)
            }
            (None, Some(url), Some(id)) => (url.clone(), id, false),
            (None, _, _) => {
                return Err(ConfigError::UnknownNetwork {
                    name: self.network.clone(),
                    known: self.networks.keys().cloned().collect::<Vec<_>>().join(", "),
                })
            }
        };
        Ok(ResolvedNetwork { name: self.network.clone(), rpc_url, chain_id, dev_accounts })
    }

    /// The data directory (always set after [`Settings::load`]).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().expect("data_dir is filled in by Settings::load")
    }

    /// The settings as TOML with every secret and RPC credential redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.rpc_url = shown.rpc_url.as_deref().map(redact_url);
        for profile in shown.networks.values_mut() {
            profile.rpc_url = redact_url(&profile.rpc_url);
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

fn home_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.entry("HOME".into()).or_insert_with(|| "/nonexistent-home".into());
        m
    }

    #[test]
    fn defaults_give_the_geth_network() {
        let s = Settings::load(&Overrides::default(), &env(&[])).unwrap();
        let n = s.network().unwrap();
        assert_eq!(n.name, "geth");
        assert_eq!(n.rpc_url, "http://127.0.0.1:8546");
        assert_eq!(n.chain_id, 1337);
        assert!(n.dev_accounts);
        assert_eq!(s.data_dir(), Path::new("/nonexistent-home/.dcn"));
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn precedence_defaults_file_compat_env_dcn_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "network = \"sepolia\"\n[networks.sepolia]\nrpc_url = \"https://file.example\"\nchain_id = 11155111\n",
        )
        .unwrap();
        let flags = |o: Overrides| Overrides { config_file: Some(file.clone()), ..o };

        let s = Settings::load(&flags(Overrides::default()), &env(&[])).unwrap();
        let n = s.network().unwrap();
        assert_eq!((n.name.as_str(), n.rpc_url.as_str(), n.chain_id), ("sepolia", "https://file.example", 11155111));
        assert!(!n.dev_accounts);

        let e = env(&[("WEB3_RPC_URL", "https://compat.example"), ("WEB3_CHAIN_ID", "5")]);
        let n = Settings::load(&flags(Overrides::default()), &e).unwrap().network().unwrap();
        assert_eq!((n.rpc_url.as_str(), n.chain_id), ("https://compat.example", 5));

        let e = env(&[("WEB3_RPC_URL", "https://compat.example"), ("DCN_RPC_URL", "https://dcn.example")]);
        let n = Settings::load(&flags(Overrides::default()), &e).unwrap().network().unwrap();
        assert_eq!(n.rpc_url, "https://dcn.example", "DCN_ beats WEB3_");

        let o = flags(Overrides { rpc_url: Some("https://flag.example".into()), ..Default::default() });
        let n = Settings::load(&o, &e).unwrap().network().unwrap();
        assert_eq!(n.rpc_url, "https://flag.example", "flags beat env");
    }

    #[test]
    fn nested_env_keys_and_keys() {
        let e = env(&[
            ("DCN_FUND__TOKENS", "42"),
            (
                "DCN_FUND__ACCOUNTS",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8, 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            ),
            ("WEB3_PRIVATE_KEY", "1111111111111111111111111111111111111111111111111111111111111111"),
            ("DCN_DATA_DIR", "/tmp/dcn-x"),
        ]);
        let s = Settings::load(&Overrides::default(), &e).unwrap();
        assert_eq!(s.fund.tokens, "42");
        assert_eq!(s.fund.accounts.len(), 2);
        assert_eq!(
            s.keys.private_key.as_ref().unwrap().expose(),
            "1111111111111111111111111111111111111111111111111111111111111111",
            "an all-digit key stays a string"
        );
        assert_eq!(s.data_dir(), Path::new("/tmp/dcn-x"));
    }

    #[test]
    fn redacted_toml_hides_keys_and_url_credentials() {
        let e = env(&[
            ("WEB3_PRIVATE_KEY", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
            ("WEB3_RPC_URL", "https://user:pass@rpc.example/v3/0123456789abcdef0123"),
        ]);
        let text = Settings::load(&Overrides::default(), &e).unwrap().to_redacted_toml();
        assert!(!text.contains("ac0974"), "{text}");
        assert!(!text.contains("pass"), "{text}");
        assert!(!text.contains("0123456789abcdef0123"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn sample_config_parses_and_matches_the_defaults() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.sample");
        let o = Overrides { config_file: Some(sample.into()), ..Default::default() };
        let from_sample = Settings::load(&o, &env(&[])).unwrap();
        let defaults = Settings::load(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(from_sample.to_redacted_toml(), defaults.to_redacted_toml());
    }

    #[test]
    fn errors_name_the_fix() {
        let o = Overrides { config_file: Some("/no/such/dcn.toml".into()), ..Default::default() };
        let err = Settings::load(&o, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("/no/such/dcn.toml"), "{err}");

        let o = Overrides { network: Some("mainnet".into()), ..Default::default() };
        let err = Settings::load(&o, &env(&[])).unwrap().network().unwrap_err().to_string();
        assert!(err.contains("unknown network `mainnet`") && err.contains("geth"), "{err}");

        let o = Overrides {
            network: Some("adhoc".into()),
            rpc_url: Some("http://127.0.0.1:1".into()),
            chain_id: Some(7),
            ..Default::default()
        };
        assert_eq!(Settings::load(&o, &env(&[])).unwrap().network().unwrap().chain_id, 7);
    }
}
