//! Loading the settings from their layers.

use super::{ConfigError, Overrides, Settings};
use crate::logging::LogFormat;
use config::{Config, Environment, File, FileFormat};
use std::collections::HashMap;
use std::path::PathBuf;

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
cowsay_price = "3"
job_board_min_payment = "1"
job_board_min_timeout_secs = 600
min_mediators = 0
min_audit_ppm = 100000
min_mediation_fee = "0.1"
min_bond = "50"
appeal_fee = "2"
appeal_window_secs = 86400
silence_slash = "1"

[executor]
allow_network = false
allow_root = false
pids_limit = 256
tmp_mb = 64
runtime = ""
outputs_fs = "auto"
max_image_mb = 20480
pull_timeout_secs = 600

[modules]

[solver]
listen = "127.0.0.1:8080"
max_body_bytes = 1048576
max_result_mb = 1024
max_stored_results_mb = 102400
max_subscriptions = 4096
max_subscriptions_per_address = 64
max_open_offers = 100
max_open_offers_total = 200000
rate_per_sec = 50
rate_burst = 100
ip_rate_per_sec = 200
ip_rate_burst = 400
offer_max_ahead_secs = 86400
request_max_ahead_secs = 300
sign_timeout_secs = 60
create_timeout_secs = 300
result_retention_hours = 72
chain_poll_ms = 1000
escrow_cache_secs = 10

[services]
mediators = []

[provider]
offer_cpu = 0
offer_ram_mb = 0
offer_gpu = 0
offer_count = 1
price = "1"
collateral = "10"
modules = []
offer_ttl_secs = 600
min_result_margin_secs = 10
max_judge_timeout_secs = 86400
max_mediation_timeout_secs = 86400
max_create_window_secs = 900
max_job_timeout_secs = 3600
max_spec_bytes = 65536
max_output_mb = 1024
poll_ms = 250

[job]
max_price = "10"
mediation_fee = "1"
audit_fee = "1"
audit_ppm = 100000
match_timeout_secs = 60
result_margin_secs = 120
judge_timeout_secs = 300
mediation_timeout_secs = 600
poll_ms = 200

[mediator]
poll_ms = 500

[jobboard]
poll_ms = 500
min_payment = "1"

[dev]
chain_port = 8546
"#;

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
            .set_override_option("registry", overrides.registry.map(|a| a.to_string()))?
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
}

fn home_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

#[cfg(test)]
impl Settings {
    /// Settings from built-in defaults and `env` alone (no config file: `HOME` points nowhere
    /// unless `env` sets it), for the role config tests.
    pub(crate) fn from_test_env(env: &[(&str, &str)]) -> Self {
        let mut m: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.entry("HOME".into()).or_insert_with(|| "/nonexistent-home".into());
        Self::load(&Overrides::default(), &m).expect("test settings load")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;
    use std::path::Path;

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
        assert_eq!(s.dev.hardfork, None, "dcn dev runs anvil's latest hardfork unless told");
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
    fn the_registry_comes_from_the_profile_the_environment_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let (a, b, c) = (Address::repeat_byte(0xA), Address::repeat_byte(0xB), Address::repeat_byte(0xC));
        std::fs::write(
            &file,
            format!("network = \"lab\"\n[networks.lab]\nrpc_url = \"https://lab.example\"\nchain_id = 7\nregistry = \"{a}\"\n"),
        )
        .unwrap();
        let flags = |registry| Overrides { config_file: Some(file.clone()), registry, ..Default::default() };
        assert_eq!(Settings::load(&flags(None), &env(&[])).unwrap().network().unwrap().registry, Some(a));
        let e = env(&[("DCN_REGISTRY", &b.to_string())]);
        assert_eq!(Settings::load(&flags(None), &e).unwrap().network().unwrap().registry, Some(b));
        assert_eq!(Settings::load(&flags(Some(c)), &e).unwrap().network().unwrap().registry, Some(c));
        // An ad-hoc network: three values and nothing else.
        let o = Overrides {
            network: Some("elsewhere".into()),
            rpc_url: Some("http://10.0.0.2:8545".into()),
            chain_id: Some(9),
            registry: Some(c),
            ..Default::default()
        };
        let n = Settings::load(&o, &env(&[])).unwrap().network().unwrap();
        assert_eq!((n.name.as_str(), n.chain_id, n.registry, n.dev_accounts), ("elsewhere", 9, Some(c), false));
        assert_eq!(Settings::load(&Overrides::default(), &env(&[])).unwrap().network().unwrap().registry, None);
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
            ("DCN_DEV__HARDFORK", "shanghai"),
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
        assert_eq!(s.dev.hardfork.as_deref(), Some("shanghai"));
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
