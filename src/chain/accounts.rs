//! Which key signs for which account: configured keys, key files, and on development
//! networks the standard mnemonic with one fixed index per role.

use crate::config::{ResolvedNetwork, Settings};
use alloy::primitives::Address;
use alloy::signers::local::{coins_bip39::English, MnemonicBuilder, PrivateKeySigner};
use std::path::{Path, PathBuf};

/// The development mnemonic anvil and Hardhat prefund (`test test … junk`).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// The accounts of a development network: index `n` of [`DEV_MNEMONIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DevRole {
    /// Index 0: deploys and funds.
    Admin,
    /// Index 1: runs the solver and operates the job board.
    Solver,
    /// Index 2: the mediator.
    Mediator,
    /// Index 3: the provider.
    Provider,
    /// Index 4: the job creator (`dcn run`).
    JobCreator,
}

impl DevRole {
    /// Every role, in index order.
    pub const ALL: [DevRole; 5] = [Self::Admin, Self::Solver, Self::Mediator, Self::Provider, Self::JobCreator];

    /// The mnemonic index of this role.
    pub fn index(self) -> u32 {
        self as u32
    }

    /// Name as printed in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Solver => "solver",
            Self::Mediator => "mediator",
            Self::Provider => "provider",
            Self::JobCreator => "job-creator",
        }
    }

    /// This role's development key.
    pub fn signer(self) -> PrivateKeySigner {
        MnemonicBuilder::<English>::default()
            .phrase(DEV_MNEMONIC)
            .index(self.index())
            .and_then(|b| b.build())
            .expect("the development mnemonic derives at every index")
    }

    /// This role's development address.
    pub fn address(self) -> Address {
        self.signer().address()
    }
}

/// Why no signer could be made. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Nothing configured and not a development network.
    #[error(
        "no {what} key configured for network `{network}`: set WEB3_PRIVATE_KEY (or keys.{key} in the config \
         file), or keys.key_file to a file made by `dcn keys new`"
    )]
    Missing {
        /// Which key.
        what: &'static str,
        /// The config key to set.
        key: &'static str,
        /// The network name.
        network: String,
    },
    /// The profile asks for the development keys, but the chain is not a local one.
    #[error(
        "no {what} key configured, and network `{network}` may not use the development keys: {url} (chain id \
         {chain_id}) is not a local development chain (a loopback address and chain id 1337 or 31337), and those \
         keys are public, so anyone could spend from them there. Set WEB3_PRIVATE_KEY (or keys.{key} in the \
         config file), or keys.key_file to a file made by `dcn keys new`"
    )]
    DevKeysNotLocal {
        /// Which key.
        what: &'static str,
        /// The config key to set.
        key: &'static str,
        /// The network name.
        network: String,
        /// Its RPC URL, credentials removed.
        url: String,
        /// Its chain id.
        chain_id: u64,
    },
    /// The configured value is not a private key.
    #[error("{source_name} is not a valid private key (expected 32 bytes of hex, with or without 0x)")]
    Invalid {
        /// Where it came from (never the value).
        source_name: String,
    },
    /// The key file could not be read.
    #[error("cannot read key file {path}: {err}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        err: std::io::Error,
    },
}

/// Parses a hex private key; `source_name` names it in the error.
pub fn parse_key(hex_key: &str, source_name: &str) -> Result<PrivateKeySigner, KeyError> {
    hex_key.trim().parse::<PrivateKeySigner>().map_err(|_| KeyError::Invalid { source_name: source_name.to_string() })
}

/// Reads a key file written by `dcn keys new` (hex on one line).
pub fn read_key_file(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|err| KeyError::File { path: path.to_path_buf(), err })?;
    parse_key(&text, &format!("key file {}", path.display()))
}

/// The key this service signs with: `keys.private_key` (`WEB3_PRIVATE_KEY`), else
/// `keys.key_file`, else on a development network the key of `dev_role`.
pub fn service_signer(
    settings: &Settings,
    net: &ResolvedNetwork,
    dev_role: DevRole,
) -> Result<PrivateKeySigner, KeyError> {
    if let Some(k) = &settings.keys.private_key {
        return parse_key(k.expose(), "keys.private_key (WEB3_PRIVATE_KEY)");
    }
    if let Some(path) = &settings.keys.key_file {
        return read_key_file(path);
    }
    if net.dev_accounts {
        return Ok(dev_role.signer());
    }
    if settings.dev_accounts_refused(net) {
        return Err(KeyError::DevKeysNotLocal {
            what: "service",
            key: "private_key",
            network: net.name.clone(),
            url: net.display_url(),
            chain_id: net.chain_id,
        });
    }
    Err(KeyError::Missing { what: "service", key: "private_key", network: net.name.clone() })
}

/// The admin key for deploy and fund: `keys.admin_private_key`, else the service key
/// sources of [`service_signer`], else the development admin.
pub fn admin_signer(settings: &Settings, net: &ResolvedNetwork) -> Result<PrivateKeySigner, KeyError> {
    if let Some(k) = &settings.keys.admin_private_key {
        return parse_key(k.expose(), "keys.admin_private_key");
    }
    service_signer(settings, net, DevRole::Admin).map_err(|e| match e {
        KeyError::Missing { network, .. } => KeyError::Missing { what: "admin", key: "admin_private_key", network },
        KeyError::DevKeysNotLocal { network, url, chain_id, .. } => {
            KeyError::DevKeysNotLocal { what: "admin", key: "admin_private_key", network, url, chain_id }
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_roles_match_anvil_accounts() {
        assert_eq!(DevRole::Admin.address(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse::<Address>().unwrap());
        assert_eq!(DevRole::Solver.address(), "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse::<Address>().unwrap());
        assert_eq!(
            DevRole::JobCreator.address(),
            "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65".parse::<Address>().unwrap()
        );
    }

    #[test]
    fn the_development_keys_are_refused_off_a_local_chain() {
        let s = Settings::from_test_env(&[("DCN_RPC_URL", "https://user:pw@rpc.example/x"), ("DCN_CHAIN_ID", "1337")]);
        let net = s.network().unwrap();
        let err = service_signer(&s, &net, DevRole::Provider).unwrap_err().to_string();
        assert!(err.contains("may not use the development keys") && err.contains("WEB3_PRIVATE_KEY"), "{err}");
        assert!(!err.contains("pw"), "credentials are not shown: {err}");
        let err = admin_signer(&s, &net).unwrap_err().to_string();
        assert!(err.contains("no admin key") && err.contains("keys.admin_private_key"), "{err}");
        let key = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let s = Settings::from_test_env(&[("DCN_RPC_URL", "https://rpc.example"), ("WEB3_PRIVATE_KEY", key)]);
        let net = s.network().unwrap();
        assert_eq!(service_signer(&s, &net, DevRole::Provider).unwrap().address(), DevRole::Admin.address());
        let local = Settings::from_test_env(&[]);
        let net = local.network().unwrap();
        assert_eq!(service_signer(&local, &net, DevRole::Provider).unwrap().address(), DevRole::Provider.address());
    }

    #[test]
    fn bad_keys_are_named_not_printed() {
        let err = parse_key("0xnot-a-key-but-secret", "keys.private_key").unwrap_err().to_string();
        assert!(err.contains("keys.private_key") && !err.contains("secret"), "{err}");
        let k = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        assert_eq!(parse_key(k, "x").unwrap().address(), DevRole::Admin.address());
        assert_eq!(parse_key(&format!("0x{k}\n"), "x").unwrap().address(), DevRole::Admin.address());
    }
}
