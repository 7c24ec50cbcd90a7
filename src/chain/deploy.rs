//! `dcn deploy`: put the contracts on a chain, wire them, record where they are, and
//! reuse a recorded deployment whose code is still there and unchanged.

use super::bindings::{CowsayClient, DcnDeals, DcnJobBoard, DcnRegistry, DcnToken};
use super::client::{ChainClient, ChainError};
use super::deployment::{current_artifact_hashes, Contracts, Deployment, DeploymentError};
use super::state::Role;
use alloy::primitives::{Address, U256};
use std::collections::BTreeMap;
use std::path::Path;

/// Tokens minted to the deployer: one billion DCN (18 decimals).
pub fn initial_supply() -> U256 {
    U256::from(1_000_000_000u64) * U256::from(10u64).pow(U256::from(18))
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Redeploy even if a recorded deployment is still good.
    pub force: bool,
    /// Account allowed to deliver job-board results.
    pub job_board_operator: Address,
    /// Tokens (base units) the example CowsayClient pays per job.
    pub cowsay_price: U256,
    /// Least payment of a job-board request, token units.
    pub job_board_min_payment: U256,
    /// Least time a job-board request gives, seconds.
    pub job_board_min_timeout_secs: u64,
    /// Accounts the registry's owner approves, per role (on a new or a reused deployment).
    pub approve: Vec<(Role, Address)>,
    /// The network's rules for deals (`DcnDeals.params`).
    pub rules: super::NetworkRules,
}

/// `DcnDeals.Params` of `rules`.
fn params_of(r: &super::NetworkRules) -> DcnDeals::Params {
    use alloy::primitives::aliases::{U88, U96};
    DcnDeals::Params {
        minMediators: r.min_mediators,
        minAuditPpm: r.min_audit_ppm,
        appealWindow: r.appeal_window,
        minMediationFee: U96::saturating_from(r.min_mediation_fee),
        silenceSlash: U88::saturating_from(r.silence_slash),
        minBond: U96::saturating_from(r.min_bond),
        appealFee: U96::saturating_from(r.appeal_fee),
    }
}

/// What `deploy` did.
#[derive(Debug, Clone)]
pub struct DeployOutcome {
    /// The deployment now in force.
    pub deployment: Deployment,
    /// True when the recorded deployment was kept.
    pub reused: bool,
}

/// Failures of `deploy`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Talking to the chain failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The record could not be read or written.
    #[error(transparent)]
    Record(#[from] DeploymentError),
    /// A contract does not point where it should after deploying.
    #[error("deployment wiring check failed: {0}")]
    Wiring(String),
}

/// Deploys and wires every contract with `client`'s account, or reuses the recorded
/// deployment of this network when its chain id and artifacts match and the code is
/// still at every address (`options.force` skips the reuse).
pub async fn deploy(
    client: &ChainClient,
    data_dir: &Path,
    options: &DeployOptions,
) -> Result<DeployOutcome, DeployError> {
    let net = &client.network;
    if !options.force {
        if let Some(existing) = Deployment::load(data_dir, &net.name)? {
            if still_valid(client, &existing).await? {
                tracing::info!(network = %net.name, block = existing.block, "reusing the recorded deployment");
                approve(client, existing.contracts.registry, &options.approve).await?;
                return Ok(DeployOutcome { deployment: existing, reused: true });
            }
            tracing::info!(network = %net.name, "recorded deployment is stale (other chain, code or artifacts): redeploying");
        }
    }
    client.require_gas_money().await?;

    let p = &client.provider;
    let token = deploy_one(client, "DcnToken", DcnToken::deploy_builder(p, initial_supply())).await?;
    let registry = deploy_one(client, "DcnRegistry", DcnRegistry::deploy_builder(p)).await?;
    let deals = deploy_one(client, "DcnDeals", DcnDeals::deploy_builder(p, token.0, params_of(&options.rules))).await?;
    let job_board = deploy_one(
        client,
        "DcnJobBoard",
        DcnJobBoard::deploy_builder(
            p,
            token.0,
            deals.0,
            options.job_board_operator,
            options.job_board_min_payment,
            options.job_board_min_timeout_secs,
        ),
    )
    .await?;
    let cowsay =
        deploy_one(client, "CowsayClient", CowsayClient::deploy_builder(p, job_board.0, options.cowsay_price)).await?;
    let contracts = Contracts {
        token: token.0,
        registry: registry.0,
        deals: deals.0,
        job_board: job_board.0,
        cowsay_client: cowsay.0,
    };
    // The registry names the others: one address is all another machine needs.
    let reg = DcnRegistry::new(registry.0, p);
    let set = reg.setNetwork(token.0, deals.0, job_board.0, cowsay.0);
    let block = client.send("recording the contracts in DcnRegistry", set).await?.block_number.unwrap_or(cowsay.1);
    // Appeals draw their mediators from the registry's approved pool.
    let deals_contract = DcnDeals::new(deals.0, p);
    client.send("naming DcnRegistry in DcnDeals", deals_contract.setRegistry(registry.0)).await?;

    check_wiring(client, &contracts, options.job_board_operator).await?;

    let mut code_hashes = BTreeMap::new();
    for (name, address) in contracts.named() {
        code_hashes.insert(name.to_string(), client.code_hash(address).await?);
    }
    let deployment = Deployment {
        network: net.name.clone(),
        chain_id: net.chain_id,
        block,
        deployer: client.from,
        deployed_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        contracts,
        job_board_operator: options.job_board_operator,
        artifact_hashes: current_artifact_hashes(),
        code_hashes,
    };
    approve(client, contracts.registry, &options.approve).await?;
    let path = deployment.save(data_dir)?;
    tracing::info!(network = %net.name, record = %path.display(), "deployment recorded");
    Ok(DeployOutcome { deployment, reused: false })
}

/// Makes the registry at `registry` approve (`approved`) or stop approving each account in
/// its role, sending a transaction only where that changes something. Needs the owner's key.
pub async fn set_approvals(
    client: &ChainClient,
    registry: Address,
    accounts: &[(Role, Address)],
    approved: bool,
) -> Result<usize, ChainError> {
    let reg = DcnRegistry::new(registry, &client.provider);
    let mut sent = 0;
    for &(role, account) in accounts {
        let now = reg
            .isApproved(role.to_chain(), account)
            .call()
            .await
            .map_err(|e| ChainError::call("reading DcnRegistry.isApproved", e))?;
        if now == approved {
            continue;
        }
        let what =
            format!("{} {} {account} in DcnRegistry", if approved { "approving" } else { "revoking" }, role.name());
        client.send(&what, reg.setApproved(role.to_chain(), account, approved)).await?;
        sent += 1;
    }
    Ok(sent)
}

async fn approve(client: &ChainClient, registry: Address, accounts: &[(Role, Address)]) -> Result<(), ChainError> {
    set_approvals(client, registry, accounts, true).await.map(|_| ())
}

// Sends one deployment; returns the address and the block it landed in.
async fn deploy_one(
    client: &ChainClient,
    name: &str,
    builder: alloy::contract::RawCallBuilder<&alloy::providers::DynProvider>,
) -> Result<(Address, u64), ChainError> {
    let receipt = client.send(&format!("deploying {name}"), builder).await?;
    let address = receipt.contract_address.ok_or_else(|| ChainError::Reverted {
        what: format!("deploying {name} (no contract address in the receipt)"),
        tx: receipt.transaction_hash,
    })?;
    tracing::info!(contract = name, %address, gas = receipt.gas_used, "deployed");
    Ok((address, receipt.block_number.unwrap_or_default()))
}

async fn still_valid(client: &ChainClient, d: &Deployment) -> Result<bool, ChainError> {
    if d.chain_id != client.network.chain_id || d.artifact_hashes != current_artifact_hashes() {
        return Ok(false);
    }
    for (name, address) in d.contracts.named() {
        let Some(recorded) = d.code_hashes.get(name) else { return Ok(false) };
        if client.code_hash(address).await? != *recorded {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks that every contract points at the others as deployed.
pub async fn check_wiring(client: &ChainClient, c: &Contracts, operator: Address) -> Result<(), DeployError> {
    let p = &client.provider;
    let read = |what: &str| {
        let what = what.to_string();
        move |source| ChainError::call(what, source)
    };
    let deals_token = DcnDeals::new(c.deals, p).token().call().await.map_err(read("reading DcnDeals.token"))?;
    let deals_registry =
        DcnDeals::new(c.deals, p).registry().call().await.map_err(read("reading DcnDeals.registry"))?;
    let board = DcnJobBoard::new(c.job_board, p);
    let board_token = board.token().call().await.map_err(read("reading DcnJobBoard.token"))?;
    let board_operator = board.operator().call().await.map_err(read("reading DcnJobBoard.operator"))?;
    let board_deals = board.deals().call().await.map_err(read("reading DcnJobBoard.deals"))?;
    // A network joined from its registry may have no example client.
    let client_board = if c.cowsay_client.is_zero() {
        c.job_board
    } else {
        CowsayClient::new(c.cowsay_client, p).board().call().await.map_err(read("reading CowsayClient.board"))?
    };
    let checks = [
        ("DcnDeals.token", deals_token, c.token),
        ("DcnDeals.registry", deals_registry, c.registry),
        ("DcnJobBoard.token", board_token, c.token),
        ("DcnJobBoard.operator", board_operator, operator),
        ("DcnJobBoard.deals", board_deals, c.deals),
        ("CowsayClient.board", client_board, c.job_board),
    ];
    for (what, got, want) in checks {
        if got != want {
            return Err(DeployError::Wiring(format!("{what} is {got}, expected {want}")));
        }
    }
    Ok(())
}
