//! Reading contract logs in block ranges from a cursor, for services that follow events
//! (the mediator's challenges, the job board's requests).

use super::{ChainClient, ChainError};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};

/// Most blocks read per request.
pub const MAX_RANGE: u64 = 2_000;

/// The logs matching `filter` from block `from` up to the head (at most [`MAX_RANGE`]
/// blocks), and the block to continue from; `None` when there is no new block.
pub async fn next_logs(
    client: &ChainClient,
    filter: &Filter,
    from: u64,
) -> Result<Option<(Vec<Log>, u64)>, ChainError> {
    let head = client.block_number().await?;
    if head < from {
        return Ok(None);
    }
    let to = head.min(from + MAX_RANGE - 1);
    let filter = filter.clone().from_block(from).to_block(to);
    let logs = client
        .provider
        .get_logs(&filter)
        .await
        .map_err(|source| ChainError::Rpc { what: "reading contract logs".into(), source })?;
    Ok(Some((logs, to + 1)))
}

/// Where a follower starts when it has no cursor: a little before the head, so a
/// service started just after an event still sees it.
pub async fn start_block(client: &ChainClient) -> Result<u64, ChainError> {
    Ok(client.block_number().await?.saturating_sub(1_000))
}
