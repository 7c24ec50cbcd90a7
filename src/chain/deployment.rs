//! The record of a deployment: which contracts live where on a network. `dcn deploy`
//! writes it to `<data_dir>/deployments/<network>.json`; every other command reads it.

use alloy::primitives::{keccak256, Address, B256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Addresses of the deployed contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contracts {
    /// `DcnToken`.
    pub token: Address,
    /// `DcnRegistry`.
    pub registry: Address,
    /// `DcnDeals`.
    pub deals: Address,
    /// `DcnJobBoard`.
    pub job_board: Address,
    /// The example `CowsayClient`.
    pub cowsay_client: Address,
}

impl Contracts {
    /// (artifact name, address) of every contract.
    pub fn named(&self) -> [(&'static str, Address); 5] {
        [
            ("DcnToken", self.token),
            ("DcnRegistry", self.registry),
            ("DcnDeals", self.deals),
            ("DcnJobBoard", self.job_board),
            ("CowsayClient", self.cowsay_client),
        ]
    }
}

/// One deployment of the contracts on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Network profile name.
    pub network: String,
    /// Chain id it was deployed on.
    pub chain_id: u64,
    /// Block of the last deployment transaction.
    pub block: u64,
    /// Account that deployed (and owns) the contracts.
    pub deployer: Address,
    /// Unix time of the deployment.
    pub deployed_at: u64,
    /// Where each contract is.
    pub contracts: Contracts,
    /// Account allowed to deliver job-board results.
    pub job_board_operator: Address,
    /// keccak256 of each artifact file the code came from.
    pub artifact_hashes: BTreeMap<String, B256>,
    /// keccak256 of the code found at each address right after deploying.
    pub code_hashes: BTreeMap<String, B256>,
}

/// Failures reading or writing a deployment record.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// No record for this network.
    #[error(
        "no deployment of network `{network}` in {dir}: run `dcn deploy --network {network}` first, or, to join a \
         network deployed from another machine, give its registry address (--registry 0x…, or registry = \"0x…\" \
         in [networks.{network}])"
    )]
    Missing {
        /// Network name.
        network: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// The record is not readable.
    #[error("deployment record {path} is unreadable ({reason}): fix or delete it and run `dcn deploy` again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The record could not be written.
    #[error("cannot write deployment record {path}: {err}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
}

/// The artifact hashes of the contracts embedded in this binary.
pub fn current_artifact_hashes() -> BTreeMap<String, B256> {
    super::bindings::ARTIFACTS.iter().map(|(name, text)| (name.to_string(), keccak256(text.as_bytes()))).collect()
}

impl Deployment {
    /// Where the record of `network` lives under `data_dir`.
    pub fn path(data_dir: &Path, network: &str) -> PathBuf {
        data_dir.join("deployments").join(format!("{network}.json"))
    }

    /// Reads the record of `network`, if there is one.
    pub fn load(data_dir: &Path, network: &str) -> Result<Option<Self>, DeploymentError> {
        let path = Self::path(data_dir, network);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DeploymentError::Corrupt { path, reason: e.to_string() }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| DeploymentError::Corrupt { path, reason: e.to_string() })
    }

    /// Reads the record of `network`, failing with a hint to deploy when there is none.
    pub fn require(data_dir: &Path, network: &str) -> Result<Self, DeploymentError> {
        Self::load(data_dir, network)?
            .ok_or_else(|| DeploymentError::Missing { network: network.to_string(), dir: data_dir.join("deployments") })
    }

    /// Writes the record atomically (temp file, then rename).
    pub fn save(&self, data_dir: &Path) -> Result<PathBuf, DeploymentError> {
        let path = Self::path(data_dir, &self.network);
        let write = |err| DeploymentError::Write { path: path.clone(), err };
        std::fs::create_dir_all(path.parent().expect("record path has a parent")).map_err(write)?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("a deployment serializes") + "\n";
        std::fs::write(&tmp, text).map_err(write)?;
        std::fs::rename(&tmp, &path).map_err(write)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Deployment::load(dir.path(), "geth").unwrap().is_none());
        let err = Deployment::require(dir.path(), "geth").unwrap_err().to_string();
        assert!(err.contains("dcn deploy --network geth"), "{err}");
        let d = Deployment {
            network: "geth".into(),
            chain_id: 1337,
            block: 5,
            deployer: Address::repeat_byte(1),
            deployed_at: 1,
            contracts: Contracts {
                token: Address::repeat_byte(2),
                registry: Address::repeat_byte(3),
                deals: Address::repeat_byte(4),
                job_board: Address::repeat_byte(5),
                cowsay_client: Address::repeat_byte(6),
            },
            job_board_operator: Address::repeat_byte(7),
            artifact_hashes: current_artifact_hashes(),
            code_hashes: BTreeMap::new(),
        };
        d.save(dir.path()).unwrap();
        assert_eq!(Deployment::require(dir.path(), "geth").unwrap(), d);
        std::fs::write(Deployment::path(dir.path(), "geth"), "{").unwrap();
        assert!(Deployment::load(dir.path(), "geth").unwrap_err().to_string().contains("unreadable"));
    }
}
