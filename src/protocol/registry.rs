//! `DcnRegistry`: services announce themselves ([`register`]) and clients find them
//! ([`find_solver`], [`find_mediators`]). Registering is open to anyone, so a client trusts
//! only what it names itself or what the network's owner approved in the registry: the
//! solver is a configured URL or address, else the first approved one; the mediators are
//! the configured ones, else the approved ones. Listings are read a page at a time
//! ([`list`]).

use super::client::{ClientError, SolverApi, SolverClient};
use crate::chain::bindings::DcnRegistry;
use crate::chain::{ChainClient, ChainError, Contracts, Role};
use alloy::primitives::{Address, B256, U256};

/// Entries per registry read: the contract's `MAX_PAGE`.
pub const PAGE: usize = 100;

/// Longest URL the registry takes, in bytes (`MAX_URL_BYTES`).
pub const MAX_URL_BYTES: usize = 256;

/// Longest metadata the registry takes, in bytes (`MAX_METADATA_BYTES`).
pub const MAX_METADATA_BYTES: usize = 1024;

fn read_err(source: alloy::contract::Error) -> ChainError {
    ChainError::call("reading the registry", source)
}

/// Registers this account for `role` with `url` and `metadata` in the registry at
/// `registry`, or updates its entry if it changed. Returns whether a transaction was sent.
pub async fn register(
    chain: &ChainClient,
    registry: Address,
    role: Role,
    url: &str,
    metadata: &str,
) -> Result<bool, ChainError> {
    if url.len() > MAX_URL_BYTES {
        return Err(ChainError::WouldRevert(format!(
            "the registry takes a URL of at most {MAX_URL_BYTES} bytes; this {}'s has {}: give it a shorter \
             public URL",
            role.name(),
            url.len()
        )));
    }
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(ChainError::WouldRevert(format!(
            "the registry takes metadata of at most {MAX_METADATA_BYTES} bytes; this {}'s has {} (the provider \
             lists its modules there): offer fewer modules (provider.modules)",
            role.name(),
            metadata.len()
        )));
    }
    let reg = DcnRegistry::new(registry, &chain.provider);
    let role = role.to_chain();
    if reg.isRegistered(role, chain.from).call().await.map_err(read_err)? {
        let current = reg.get(role, chain.from).call().await.map_err(read_err)?;
        if current.url == url && current.metadata == metadata {
            return Ok(false);
        }
        chain.send("updating the registry entry", reg.update(role, url.into(), metadata.into())).await?;
    } else {
        chain.send("registering in the registry", reg.register(role, url.into(), metadata.into())).await?;
    }
    Ok(true)
}

/// One entry of a registry listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// The account.
    pub account: Address,
    /// Its URL; empty for an approved account that is not registered.
    pub url: String,
    /// Its metadata.
    pub metadata: String,
    /// Whether it is registered now.
    pub registered: bool,
    /// Whether the registry's owner approved it.
    pub approved: bool,
}

/// Which accounts of a role to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The registered ones.
    Registered,
    /// The ones the owner approved (registered or not).
    Approved,
}

/// Most entries a client reads to find whom to trust (the owner's approvals are few; this
/// bounds the work whatever a node answers).
pub const MAX_TRUSTED_READ: usize = 10_000;

/// Up to `max` entries of `role` from position `offset` in the registry at `registry`,
/// read a page at a time.
pub async fn list(
    chain: &ChainClient,
    registry: Address,
    role: Role,
    which: Listing,
    offset: usize,
    max: usize,
) -> Result<Vec<Listed>, ChainError> {
    let reg = DcnRegistry::new(registry, &chain.provider);
    let mut out = Vec::new();
    while out.len() < max {
        let (offset, limit) = (U256::from(offset + out.len()), U256::from(PAGE));
        let page = match which {
            Listing::Registered => reg.list(role.to_chain(), offset, limit).call().await,
            Listing::Approved => reg.listApproved(role.to_chain(), offset, limit).call().await,
        }
        .map_err(read_err)?;
        let full = page.len() == PAGE;
        out.extend(page.into_iter().map(|s| Listed {
            account: s.account,
            url: s.url,
            metadata: s.metadata,
            registered: s.registeredAt != 0,
            approved: s.approved,
        }));
        if !full {
            break;
        }
    }
    out.truncate(max);
    Ok(out)
}

/// Why a service could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Reading the registry failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// No approved service of the role is registered, and none was named.
    #[error(
        "no {role} approved by the network's owner is registered in DcnRegistry on network `{network}`: name one \
         you trust with {flag} (`dcn registry list {role}` shows who registered), ask the owner to approve one \
         (`dcn registry approve {role} 0x…`), or use `dcn dev` for a local network"
    )]
    NoneApproved {
        /// The role.
        role: &'static str,
        /// The network.
        network: String,
        /// The flag or setting that names one.
        flag: &'static str,
    },
    /// The named solver address is not registered.
    #[error("solver {0} is not registered in DcnRegistry: pass its URL instead (--solver http://…)")]
    UnknownSolver(Address),
    /// The solver did not answer.
    #[error(transparent)]
    Solver(#[from] ClientError),
    /// The solver runs for another deployment.
    #[error(
        "the solver at {url} serves DcnDeals {theirs} on chain {their_chain}, but network `{network}` uses {ours} \
         on chain {our_chain}: point --solver at this network's solver"
    )]
    WrongDeployment {
        /// Its URL.
        url: String,
        /// Its contract.
        theirs: Address,
        /// Its chain.
        their_chain: u64,
        /// Ours.
        ours: Address,
        /// Our chain.
        our_chain: u64,
        /// Network name.
        network: String,
    },
    /// The solver follows another chain with the same id and contract addresses.
    #[error(
        "the solver at {url} follows another chain than the node at {rpc_url}: both have chain id {chain_id} and the \
         same DcnDeals, but block 0 is {theirs} there and {ours} here (a development chain restarted, or two \
         of them). Pass the --rpc-url of the chain the solver follows (the one `dcn dev` \
         printed), or restart the solver on this chain"
    )]
    OtherChain {
        /// The solver's URL.
        url: String,
        /// This process's node, credentials redacted.
        rpc_url: String,
        /// The chain id both report.
        chain_id: u64,
        /// Block 0's hash at the solver's chain.
        theirs: B256,
        /// Block 0's hash at this process's node.
        ours: B256,
    },
}

/// Connects to the solver: `configured` is a URL or an address (trusted because the user
/// named it); `None` takes the first solver the registry's owner approved. Checks that it
/// serves this deployment, on the chain this process's node serves (block 0 alike).
pub async fn find_solver(
    chain: &ChainClient,
    contracts: &Contracts,
    configured: Option<&str>,
) -> Result<SolverClient, DiscoveryError> {
    let url = match configured.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => s.to_string(),
        Some(s) => {
            let addr: Address = s.parse().map_err(|_| {
                DiscoveryError::Solver(ClientError::Unreachable {
                    url: s.to_string(),
                    reason: "not an http(s) URL or an address".into(),
                })
            })?;
            let reg = DcnRegistry::new(contracts.registry, &chain.provider);
            if !reg.isRegistered(Role::Solver.to_chain(), addr).call().await.map_err(read_err)? {
                return Err(DiscoveryError::UnknownSolver(addr));
            }
            reg.get(Role::Solver.to_chain(), addr).call().await.map_err(read_err)?.url
        }
        None => list(chain, contracts.registry, Role::Solver, Listing::Approved, 0, MAX_TRUSTED_READ)
            .await?
            .into_iter()
            .find(|s| s.registered)
            .map(|s| s.url)
            .ok_or(DiscoveryError::NoneApproved {
                role: "solver",
                network: chain.network.name.clone(),
                flag: "--solver URL (or SERVICE_SOLVER)",
            })?,
    };
    let client = SolverClient::connect(&url).await?;
    let info = client.info();
    if info.deals_contract != contracts.deals || info.chain_id != chain.network.chain_id {
        return Err(DiscoveryError::WrongDeployment {
            url,
            theirs: info.deals_contract,
            their_chain: info.chain_id,
            ours: contracts.deals,
            our_chain: chain.network.chain_id,
            network: chain.network.name.clone(),
        });
    }
    // Same id and addresses prove little on development chains, which all start alike; the
    // first block tells them apart. Solvers that do not publish it are taken on their word.
    if let (Some(theirs), Some(ours)) = (info.genesis_hash, chain.genesis_hash().await?) {
        if theirs != ours {
            return Err(DiscoveryError::OtherChain {
                url,
                rpc_url: chain.network.display_url(),
                chain_id: chain.network.chain_id,
                theirs,
                ours,
            });
        }
    }
    Ok(client)
}

/// The mediators to trust: `configured` if not empty, else the registered mediators the
/// registry's owner approved; never `me`, at most `MAX_MEDIATORS`.
pub async fn find_mediators(
    chain: &ChainClient,
    contracts: &Contracts,
    configured: &[Address],
) -> Result<Vec<Address>, DiscoveryError> {
    let mut list: Vec<Address> = if configured.is_empty() {
        list(chain, contracts.registry, Role::Mediator, Listing::Approved, 0, MAX_TRUSTED_READ)
            .await?
            .into_iter()
            .filter(|s| s.registered)
            .map(|s| s.account)
            .collect()
    } else {
        configured.to_vec()
    };
    list.retain(|a| *a != chain.from);
    let mut seen = std::collections::HashSet::new();
    list.retain(|a| seen.insert(*a));
    list.truncate(super::MAX_MEDIATORS);
    if list.is_empty() {
        return Err(DiscoveryError::NoneApproved {
            role: "mediator",
            network: chain.network.name.clone(),
            flag: "--mediators 0x… (or SERVICE_MEDIATORS)",
        });
    }
    Ok(list)
}
