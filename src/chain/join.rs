//! Joining a network from one address. `dcn deploy` records the network's contracts in
//! its `DcnRegistry` (`setNetwork`, once); a machine that knows the RPC URL, the chain id
//! and the registry's address reads the rest from the chain ([`from_registry`]). Before it
//! trusts them it checks that every address holds the code this binary was built with
//! (immutables masked, [`code_matches`]) and that the contracts point at each other, so a
//! wrong or hostile registry address is refused before any token moves.

use super::bindings::{DcnJobBoard, DcnRegistry, ARTIFACTS};
use super::client::{ChainClient, ChainError};
use super::deploy::{check_wiring, DeployError};
use super::deployment::{current_artifact_hashes, Contracts, Deployment, DeploymentError};
use alloy::primitives::Address;
use alloy::providers::Provider;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

/// Why a network could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Talking to the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// No registry is configured and the local record is missing or unreadable.
    #[error(transparent)]
    Record(#[from] DeploymentError),
    /// Nothing is deployed at an address.
    #[error(
        "no contract at {address} on chain {chain_id} (expected {name}): check the registry address (`dcn deploy` \
         prints it) and that --rpc-url reaches the network's chain"
    )]
    NoContract {
        /// The contract expected there.
        name: &'static str,
        /// The address.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// The code is not the contract this binary speaks to.
    #[error(
        "the code at {address} is not the {name} this dcn was built with: the network runs another release of the \
         contracts, or is not a dcn network; use the dcn release that deployed it"
    )]
    OtherCode {
        /// The contract expected there.
        name: &'static str,
        /// The address.
        address: Address,
    },
    /// `DcnDeals` computes deal ids under another EIP-712 domain than this dcn.
    #[error(
        "DcnDeals at {address} does not compute deal ids as this dcn does (another EIP-712 domain): its \
         signatures would not be the ones this dcn makes; this is not a network this dcn can use"
    )]
    OtherDomain {
        /// The contract.
        address: Address,
    },
    /// The registry was deployed but `setNetwork` never ran.
    #[error(
        "DcnRegistry {registry} names no contracts yet: it is not the registry of a finished deployment (the \
         address `dcn deploy` prints is); ask the network's operator for that one"
    )]
    NotSet {
        /// The registry.
        registry: Address,
    },
    /// The contracts do not point at each other.
    #[error("the contracts DcnRegistry {registry} names do not fit together: {reason}")]
    Wiring {
        /// The registry.
        registry: Address,
        /// What does not fit.
        reason: String,
    },
}

/// The deployment `client`'s network uses: read from its registry when the profile names
/// one, else the record `dcn deploy` wrote in `data_dir`.
pub async fn locate(client: &ChainClient, data_dir: &Path) -> Result<Deployment, JoinError> {
    match client.network.registry {
        Some(registry) => from_registry(client, registry).await,
        None => Ok(Deployment::require(data_dir, &client.network.name)?),
    }
}

/// Reads the network's contracts from the registry at `registry` and checks their code
/// and wiring.
pub async fn from_registry(client: &ChainClient, registry: Address) -> Result<Deployment, JoinError> {
    let chain_id = client.network.chain_id;
    verify_code(client, "DcnRegistry", registry).await?;
    let reg = DcnRegistry::new(registry, &client.provider);
    let n = reg.network().call().await.map_err(|e| ChainError::call("reading DcnRegistry.network", e))?;
    if n.deals.is_zero() {
        return Err(JoinError::NotSet { registry });
    }
    let owner = reg.owner().call().await.map_err(|e| ChainError::call("reading DcnRegistry.owner", e))?;
    let contracts =
        Contracts { token: n.token, registry, deals: n.deals, job_board: n.jobBoard, cowsay_client: n.exampleClient };
    let mut code_hashes = BTreeMap::new();
    for (name, address) in contracts.named() {
        if name == "CowsayClient" && address.is_zero() {
            continue;
        }
        if name != "DcnRegistry" {
            verify_code(client, name, address).await?;
        }
        code_hashes.insert(name.to_string(), client.code_hash(address).await?);
    }
    let operator = DcnJobBoard::new(contracts.job_board, &client.provider)
        .operator()
        .call()
        .await
        .map_err(|e| ChainError::call("reading DcnJobBoard.operator", e))?;
    check_wiring(client, &contracts, operator).await.map_err(|e| match e {
        DeployError::Chain(e) => JoinError::Chain(e),
        DeployError::Record(e) => JoinError::Record(e),
        DeployError::Wiring(reason) => JoinError::Wiring { registry, reason },
    })?;
    check_domain(client, contracts.deals).await?;
    let deployed_at = client
        .provider
        .get_block_by_number(n.block.into())
        .await
        .map_err(|source| ChainError::rpc(format!("reading block {}", n.block), source))?
        .map(|b| b.header.timestamp)
        .unwrap_or_default();
    Ok(Deployment {
        network: client.network.name.clone(),
        chain_id,
        block: n.block,
        deployer: owner,
        deployed_at,
        contracts,
        job_board_operator: operator,
        artifact_hashes: current_artifact_hashes(),
        code_hashes,
    })
}

async fn verify_code(client: &ChainClient, name: &'static str, address: Address) -> Result<(), JoinError> {
    let code = client.code(address).await?;
    if code.is_empty() {
        return Err(JoinError::NoContract { name, address, chain_id: client.network.chain_id });
    }
    if !code_matches(name, &code) {
        return Err(JoinError::OtherCode { name, address });
    }
    Ok(())
}

// The immutables are masked in the code check; the EIP-712 domain among them is checked
// here, by asking the contract for the id of a probe deal and computing it locally.
async fn check_domain(client: &ChainClient, deals: Address) -> Result<(), JoinError> {
    use super::bindings::DcnDeals;
    let probe = DcnDeals::Deal {
        jobCreator: Address::repeat_byte(1),
        provider: Address::repeat_byte(2),
        solver: Address::repeat_byte(3),
        mediators: vec![Address::repeat_byte(4)],
        price: alloy::primitives::U256::from(5),
        collateral: alloy::primitives::U256::from(6),
        mediationFee: alloy::primitives::U256::from(7),
        auditFee: alloy::primitives::U256::from(7),
        auditPpm: 77,
        resultTimeout: 8,
        judgeTimeout: 9,
        mediationTimeout: 10,
        createDeadline: 11,
        jobHash: alloy::primitives::B256::repeat_byte(12),
        nonce: alloy::primitives::U256::from(13),
    };
    let theirs = DcnDeals::new(deals, &client.provider)
        .dealId(probe.clone())
        .call()
        .await
        .map_err(|e| ChainError::call("reading DcnDeals.dealId", e))?;
    let ours = super::deals::deal_id(&probe, &super::deals::domain(client.network.chain_id, deals));
    if theirs != ours {
        return Err(JoinError::OtherDomain { address: deals });
    }
    Ok(())
}

// The runtime code of each artifact, and the byte ranges its constructor fills in.
struct Runtime {
    code: Vec<u8>,
    immutables: Vec<(usize, usize)>,
}

static RUNTIMES: LazyLock<BTreeMap<&'static str, Runtime>> = LazyLock::new(|| {
    ARTIFACTS
        .iter()
        .map(|(name, text)| {
            let v: serde_json::Value = serde_json::from_str(text).expect("an embedded artifact is JSON");
            let code = v["deployedBytecode"].as_str().expect("an artifact has deployedBytecode");
            let code = hex::decode(code.trim_start_matches("0x")).expect("deployedBytecode is hex");
            let immutables = v["immutableReferences"]
                .as_array()
                .expect("an artifact has immutableReferences (run `make contracts`)")
                .iter()
                .map(|r| (r[0].as_u64().unwrap_or(0) as usize, r[1].as_u64().unwrap_or(0) as usize))
                .collect();
            (*name, Runtime { code, immutables })
        })
        .collect()
});

/// Whether `code` (as found on a chain) is the runtime code of the artifact `name`,
/// whatever its constructor put in the immutables.
pub fn code_matches(name: &str, code: &[u8]) -> bool {
    let Some(runtime) = RUNTIMES.get(name) else { return false };
    if code.len() != runtime.code.len() {
        return false;
    }
    let mut masked = code.to_vec();
    for &(start, len) in &runtime.immutables {
        let Some(range) = masked.get_mut(start..start + len) else { return false };
        range.copy_from_slice(&runtime.code[start..start + len]);
    }
    masked == runtime.code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact_code(name: &str) -> Vec<u8> {
        RUNTIMES[name].code.clone()
    }

    #[test]
    fn code_matches_whatever_the_immutables_hold() {
        for (name, _) in ARTIFACTS {
            let mut code = artifact_code(name);
            assert!(code_matches(name, &code), "{name} matches itself");
            for &(start, len) in &RUNTIMES[name].immutables {
                code[start..start + len].fill(0xAB);
            }
            assert!(code_matches(name, &code), "{name} with its immutables filled in");
        }
        assert!(!RUNTIMES["DcnDeals"].immutables.is_empty(), "DcnDeals has immutables (its token)");
    }

    #[test]
    fn other_code_does_not_match() {
        let deals = artifact_code("DcnDeals");
        assert!(!code_matches("DcnRegistry", &deals), "another contract");
        assert!(!code_matches("DcnDeals", &deals[..deals.len() - 1]), "shorter");
        let mut longer = deals.clone();
        longer.push(0);
        assert!(!code_matches("DcnDeals", &longer), "longer");
        // One byte changed outside the immutables.
        let free = (0..deals.len())
            .find(|i| RUNTIMES["DcnDeals"].immutables.iter().all(|&(s, l)| !(s..s + l).contains(i)) && *i > 100)
            .unwrap();
        let mut changed = deals.clone();
        changed[free] ^= 1;
        assert!(!code_matches("DcnDeals", &changed), "a changed opcode");
        assert!(!code_matches("NoSuchContract", &deals), "unknown name");
    }
}
