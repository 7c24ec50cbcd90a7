//! Configuration: the settings every command reads, loaded from layers.
//!
//! Layers, lowest first: built-in defaults (`load::DEFAULTS`) < the config file
//! (`--config`, default `~/.dcn/config.toml`) < the operators' compat env names
//! (`WEB3_RPC_URL`, `WEB3_CHAIN_ID`, `WEB3_PRIVATE_KEY`, …) < `DCN_*` env vars (`__`
//! separates sections: `DCN_KEYS__PRIVATE_KEY`) < command-line flags ([`Overrides`]).
//! `config.toml.sample` documents every key. Start at [`Settings::load`]; the sections are
//! in [`sections`]. Each role resolves its own config from these settings (for example
//! `provider::ProviderConfig::resolve`).

mod load;
pub mod sections;

pub use load::DEFAULTS;
pub use sections::*;

use crate::logging::LogFormat;
use crate::secret::redact_url;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
         your config file, or pass both --rpc-url and --chain-id (and --registry to find its contracts)"
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

/// Chain ids of local development chains: geth `--dev`, ganache and `dcn dev` (1337);
/// anvil and hardhat by default (31337).
pub const DEV_CHAIN_IDS: [u64; 2] = [1337, 31337];

/// Whether `rpc_url` and `chain_id` are a local development chain: a loopback address
/// (`127.0.0.0/8`, `::1`, `localhost`) and a development chain id. A node on this machine
/// that follows a public chain reports that chain's id, so it is not one.
pub fn is_local_chain(rpc_url: &str, chain_id: u64) -> bool {
    let Ok(url) = url::Url::parse(rpc_url) else { return false };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    loopback && DEV_CHAIN_IDS.contains(&chain_id)
}

/// A setting whose value cannot be used: names the setting, the value and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct InvalidSetting {
    /// The setting (`provider.price`); its flag and env names are in `--help` and the sample.
    pub setting: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidSetting {
    /// `setting` is invalid because of `reason`.
    pub fn new(setting: &str, reason: impl Into<String>) -> Self {
        Self { setting: setting.to_string(), reason: reason.into() }
    }
}

impl From<crate::units::AmountError> for InvalidSetting {
    fn from(e: crate::units::AmountError) -> Self {
        Self {
            setting: e.what.clone(),
            reason: format!("`{}` is not a decimal amount (for example 10 or 0.5)", e.text),
        }
    }
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
    /// Overrides the selected profile's registry address (`--registry`, `DCN_REGISTRY`).
    #[serde(default)]
    pub registry: Option<alloy::primitives::Address>,
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
    /// `dcn jobboard`.
    pub jobboard: JobBoardSettings,
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
    /// `--registry`.
    pub registry: Option<alloy::primitives::Address>,
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
    /// The network's `DcnRegistry`, when the profile names it: the deployment is then read
    /// from the chain instead of from `<data_dir>/deployments/<network>.json`.
    pub registry: Option<alloy::primitives::Address>,
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

impl Settings {
    /// The network in use, with `rpc_url`/`chain_id`/`registry` overrides applied. An
    /// unknown name is allowed when the RPC URL and chain id are given (an ad-hoc network,
    /// for example one joined from the three values `dcn deploy` prints).
    pub fn network(&self) -> Result<ResolvedNetwork, ConfigError> {
        let (rpc_url, chain_id, dev_accounts, registry) =
            match (self.networks.get(&self.network), &self.rpc_url, self.chain_id) {
                (Some(p), url, id) => {
                    let (url, id) = (url.clone().unwrap_or_else(|| p.rpc_url.clone()), id.unwrap_or(p.chain_id));
                    // The development keys are public: only ever on a chain that is plainly local.
                    let dev = p.dev_accounts && is_local_chain(&url, id);
                    (url, id, dev, self.registry.or(p.registry))
                }
                (None, Some(url), Some(id)) => (url.clone(), id, false, self.registry),
                (None, _, _) => {
                    return Err(ConfigError::UnknownNetwork {
                        name: self.network.clone(),
                        known: self.networks.keys().cloned().collect::<Vec<_>>().join(", "),
                    })
                }
            };
        Ok(ResolvedNetwork { name: self.network.clone(), rpc_url, chain_id, dev_accounts, registry })
    }

    /// Whether the selected profile asks for the development keys but the chain it points
    /// at is not a local development chain ([`is_local_chain`]), so they are refused.
    pub fn dev_accounts_refused(&self, net: &ResolvedNetwork) -> bool {
        !net.dev_accounts && self.networks.get(&net.name).is_some_and(|p| p.dev_accounts)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_node_with_a_development_chain_id_is_local() {
        for url in ["http://127.0.0.1:8546", "http://localhost:8545", "ws://127.0.0.2:1/", "http://[::1]:8545"] {
            assert!(is_local_chain(url, 1337), "{url}");
            assert!(is_local_chain(url, 31337), "{url}");
        }
        for (url, id) in [
            ("http://127.0.0.1:8545", 1),
            ("http://127.0.0.1:8545", 11155111),
            ("http://10.0.0.2:8545", 1337),
            ("https://rpc.example", 31337),
            ("http://localhost.example:8545", 1337),
            ("not a url", 1337),
        ] {
            assert!(!is_local_chain(url, id), "{url} {id}");
        }
    }

    #[test]
    fn the_development_keys_follow_the_chain_not_the_profile_alone() {
        let local = Settings::from_test_env(&[]);
        let net = local.network().unwrap();
        assert!(net.dev_accounts && !local.dev_accounts_refused(&net), "the geth profile on this machine");
        let remote = Settings::from_test_env(&[("DCN_RPC_URL", "http://10.0.0.2:8545")]);
        let net = remote.network().unwrap();
        assert!(!net.dev_accounts && remote.dev_accounts_refused(&net), "the geth profile pointed elsewhere");
        let public = Settings::from_test_env(&[("DCN_CHAIN_ID", "1")]);
        let net = public.network().unwrap();
        assert!(!net.dev_accounts && public.dev_accounts_refused(&net), "a local node of a public chain");
    }
}
