//! Escrow top-ups and deal reads: what every party to a deal does on `DcnDeals`.

use super::bindings::{DcnDeals, DcnToken};
use super::units::format_amount;
use super::{ChainClient, ChainError, Contracts};
use alloy::primitives::{Address, B256, U256};

fn call_err(what: impl Into<String>) -> impl FnOnce(alloy::contract::Error) -> ChainError {
    let what = what.into();
    move |source| ChainError::Call { what, source }
}

/// Free and locked escrow of `account`.
pub async fn escrow_of(client: &ChainClient, c: &Contracts, account: Address) -> Result<(U256, U256), ChainError> {
    let e = DcnDeals::new(c.deals, &client.provider)
        .escrowOf(account)
        .call()
        .await
        .map_err(call_err("reading the escrow balance"))?;
    Ok((e.free, e.locked))
}

/// Makes sure the signing account has at least `need` free in escrow, approving and
/// depositing the shortfall from its token balance. Returns what was deposited.
pub async fn ensure_free_escrow(client: &ChainClient, c: &Contracts, need: U256) -> Result<U256, ChainError> {
    let (free, _) = escrow_of(client, c, client.from).await?;
    if free >= need {
        return Ok(U256::ZERO);
    }
    let short = need - free;
    let token = DcnToken::new(c.token, &client.provider);
    let balance = token.balanceOf(client.from).call().await.map_err(call_err("reading the token balance"))?;
    if balance < short {
        return Err(ChainError::TokensShort {
            account: client.from,
            have: format_amount(balance),
            need: format_amount(short),
            network: client.network.name.clone(),
        });
    }
    let allowance =
        token.allowance(client.from, c.deals).call().await.map_err(call_err("reading the token allowance"))?;
    if allowance < short {
        client.send("approving DcnDeals to take tokens", token.approve(c.deals, short)).await?;
    }
    let deals = DcnDeals::new(c.deals, &client.provider);
    client.send("depositing into escrow", deals.deposit(short)).await?;
    Ok(short)
}

/// The deal `id` as stored on chain (state 0 if unknown).
pub async fn deal_info(client: &ChainClient, c: &Contracts, id: B256) -> Result<DcnDeals::DealInfo, ChainError> {
    DcnDeals::new(c.deals, &client.provider).getDeal(id).call().await.map_err(call_err(format!("reading deal {id}")))
}

/// The time the next block will carry, about: the later of the latest block's timestamp
/// and this machine's clock. Deadlines are checked against block time, but a chain that
/// mines only on demand (anvil, geth --dev) has no new block until a transaction comes,
/// so the latest block alone would never pass a deadline.
pub async fn chain_now(client: &ChainClient) -> Result<u64, ChainError> {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(latest_block_time(client).await?.max(wall))
}

async fn latest_block_time(client: &ChainClient) -> Result<u64, ChainError> {
    use alloy::providers::Provider;
    let block = client
        .provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|source| ChainError::Rpc { what: "reading the latest block".into(), source })?;
    Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
}
