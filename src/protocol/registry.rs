//! `DcnRegistry`: services announce themselves ([`register`]) and clients find them
//! ([`find_solver`], [`find_mediators`]): the solver is a configured URL or address, else
//! the first registered one; the trusted mediators are the configured ones, else every
//! registered one.

use super::client::{ClientError, SolverApi, SolverClient};
use crate::chain::bindings::DcnRegistry;
use crate::chain::{ChainClient, ChainError, Contracts, Role};
use alloy::primitives::Address;

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

/// Every service registered for `role`: (account, url), in registration order.
pub async fn registered(
    chain: &ChainClient,
    registry: Address,
    role: Role,
) -> Result<Vec<(Address, String)>, ChainError> {
    let list = DcnRegistry::new(registry, &chain.provider).list(role.to_chain()).call().await.map_err(read_err)?;
    Ok(list.into_iter().map(|s| (s.account, s.url)).collect())
}

/// Why a service could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Reading the registry failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Nobody registered.
    #[error(
        "no {role} is registered in DcnRegistry on network `{network}`: start one (`dcn {role}`, or `dcn dev` \
         for a local network), or name one with {flag}"
    )]
    NoneRegistered {
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
}

/// Connects to the solver: `configured` is a URL or an address; `None` takes the first
/// solver in the registry. Checks that it serves this deployment.
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
            registered(chain, contracts.registry, Role::Solver)
                .await?
                .into_iter()
                .find(|(a, _)| *a == addr)
                .map(|(_, url)| url)
                .ok_or(DiscoveryError::UnknownSolver(addr))?
        }
        None => registered(chain, contracts.registry, Role::Solver).await?.into_iter().next().map(|(_, u)| u).ok_or(
            DiscoveryError::NoneRegistered {
                role: "solver",
                network: chain.network.name.clone(),
                flag: "--solver URL (or SERVICE_SOLVER)",
            },
        )?,
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
    Ok(client)
}

/// The mediators to trust: `configured` if not empty, else every registered mediator
/// other than `me`.
pub async fn find_mediators(
    chain: &ChainClient,
    contracts: &Contracts,
    configured: &[Address],
) -> Result<Vec<Address>, DiscoveryError> {
    let mut list: Vec<Address> = if configured.is_empty() {
        registered(chain, contracts.registry, Role::Mediator).await?.into_iter().map(|(a, _)| a).collect()
    } else {
        configured.to_vec()
    };
    list.retain(|a| *a != chain.from);
    list.dedup();
    list.truncate(super::MAX_MEDIATORS);
    if list.is_empty() {
        return Err(DiscoveryError::NoneRegistered {
            role: "mediator",
            network: chain.network.name.clone(),
            flag: "--mediators 0x… (or SERVICE_MEDIATORS)",
        });
    }
    Ok(list)
}
