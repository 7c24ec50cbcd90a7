//! The solver and the chain: registering its URL in `DcnRegistry`, and following
//! `DcnDeals` so that deals it made move through the contract's states (and their slots
//! come back when they end).

use super::api::{now_ms, AppState};
use super::records::DealState;
use crate::chain::bindings::{DcnDeals, DcnRegistry};
use crate::chain::{ChainClient, ChainError};
use crate::store::{Batch, Op};
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use std::collections::BTreeSet;
use std::time::Duration;

/// Role number of a solver in `DcnRegistry.Role`.
pub const ROLE_SOLVER: u8 = 0;
/// Role number of a mediator.
pub const ROLE_MEDIATOR: u8 = 1;
/// Role number of a provider.
pub const ROLE_PROVIDER: u8 = 2;

const BLOCK_KEY: &str = "chain_next_block";
const MAX_RANGE: u64 = 2_000;

/// Registers `url` for `role` in the registry at `registry`, or updates it if it changed.
/// Returns whether a transaction was sent.
pub async fn register(
    chain: &ChainClient,
    registry: Address,
    role: u8,
    url: &str,
    metadata: &str,
) -> Result<bool, ChainError> {
    let reg = DcnRegistry::new(registry, &chain.provider);
    let rpc = |what: &str| {
        let what = what.to_string();
        move |source: alloy::contract::Error| ChainError::Call { what, source }
    };
    let registered = reg.isRegistered(role, chain.from).call().await.map_err(rpc("reading the registry"))?;
    if registered {
        let current = reg.get(role, chain.from).call().await.map_err(rpc("reading the registry"))?;
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
    role: u8,
) -> Result<Vec<(Address, String)>, ChainError> {
    let reg = DcnRegistry::new(registry, &chain.provider);
    let list = reg
        .list(role)
        .call()
        .await
        .map_err(|source| ChainError::Call { what: "reading the registry".into(), source })?;
    Ok(list.into_iter().map(|s| (s.account, s.url)).collect())
}

/// Follows `DcnDeals` logs from where it stopped last time, every `poll`, forever.
pub async fn follow(state: AppState, chain: ChainClient, deals: Address, poll: Duration) {
    let store = state.0.store.clone();
    let mut next = match store.meta(BLOCK_KEY) {
        Ok(Some(bytes)) if bytes.len() == 8 => u64::from_be_bytes(bytes.try_into().expect("8 bytes")),
        _ => chain.block_number().await.unwrap_or(0),
    };
    let contract = DcnDeals::new(deals, &chain.provider);
    loop {
        match step(&state, &chain, &contract, deals, next).await {
            Ok(Some(n)) => {
                next = n;
                let mut b = Batch::default();
                b.push(Op::PutMeta(BLOCK_KEY.into(), next.to_be_bytes().to_vec()));
                if let Err(e) = store.apply(b) {
                    tracing::error!(error = %e, "cannot record the chain position");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "following the chain failed; retrying"),
        }
        tokio::time::sleep(poll).await;
    }
}

/// Reads one range of logs; `Some(next block)` if it advanced.
async fn step<P: Provider>(
    state: &AppState,
    chain: &ChainClient,
    contract: &DcnDeals::DcnDealsInstance<P>,
    deals: Address,
    from: u64,
) -> Result<Option<u64>, ChainError> {
    let head = chain.block_number().await?;
    if head < from {
        return Ok(None);
    }
    let to = head.min(from + MAX_RANGE - 1);
    let filter = Filter::new().address(deals).from_block(from).to_block(to);
    let logs = chain
        .provider
        .get_logs(&filter)
        .await
        .map_err(|source| ChainError::Rpc { what: "reading DcnDeals logs".into(), source })?;
    let ids: BTreeSet<B256> = logs.iter().filter_map(|l| l.topics().get(1).copied()).collect();
    for id in ids {
        if state.core().deal(&id).is_none() {
            continue;
        }
        let info = contract
            .getDeal(id)
            .call()
            .await
            .map_err(|source| ChainError::Call { what: format!("reading deal {id}"), source })?;
        if let Some(s) = DealState::from_chain(info.state) {
            if let Err(e) = state.core().chain_state(id, s, now_ms()) {
                tracing::error!(deal = %id, error = %e, "cannot record a deal's chain state");
                return Ok(None);
            }
        }
    }
    Ok(Some(to + 1))
}
