//! The solver and the chain: follows `DcnDeals` logs so that the deals it made move
//! through the contract's states, and their slots come back when they end. Its log cursor
//! is kept in the solver's store.

use super::api::{AppState, RefreshError};
use super::store::{Batch as StoreBatch, Op, Store};
use crate::chain::{ChainError, DealsChain, LogSource};
use crate::runtime::{Backoff, Cursor, CursorError, Follower, Start};
use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CURSOR_KEY: &str = "chain_next_block";

/// The follower's cursor in the solver's store.
struct StoreCursor(Arc<dyn Store>);

impl Cursor for StoreCursor {
    fn load(&self) -> Result<Option<u64>, CursorError> {
        let err = |reason: String| CursorError { name: CURSOR_KEY.into(), reason };
        match self.0.meta(CURSOR_KEY).map_err(|e| err(e.to_string()))? {
            None => Ok(None),
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(b) => Ok(Some(u64::from_be_bytes(b))),
                Err(_) => {
                    // Nothing is lost by starting again from the head: deal states are
                    // read whole, not summed from logs.
                    tracing::warn!(
                        key = CURSOR_KEY,
                        "the stored chain position is unreadable; following from the head"
                    );
                    Ok(None)
                }
            },
        }
    }

    fn save(&self, next: u64) -> Result<(), CursorError> {
        let mut b = StoreBatch::default();
        b.push(Op::PutMeta(CURSOR_KEY.into(), next.to_be_bytes().to_vec()));
        self.0.apply(b).map_err(|e| CursorError { name: CURSOR_KEY.into(), reason: e.to_string() })
    }
}

/// Follows the logs of `deals_contract` from where it stopped last time (or from the
/// head), until `token` is cancelled. For each deal this solver made that a log names, the
/// deal's state is read and recorded.
pub async fn follow(
    state: AppState,
    chain: Arc<dyn DealsChain>,
    logs: Arc<dyn LogSource>,
    deals_contract: Address,
    poll: Duration,
    token: CancellationToken,
) -> Result<(), CursorError> {
    let cursor = Box::new(StoreCursor(state.0.store.clone()));
    let filter = Filter::new().address(deals_contract);
    let mut follower = Follower::new("solver", logs, filter, cursor, Start::Head, poll)?;
    let mut backoff = Backoff::new(poll.max(Duration::from_millis(100)), Duration::from_secs(30));
    while let Some(batch) = follower.next(&token).await {
        let ids: BTreeSet<B256> = batch.logs.iter().filter_map(|l| l.topics().get(1).copied()).collect();
        match record_states(&state, chain.as_ref(), ids).await {
            Ok(()) => {
                backoff.reset();
                follower.commit(&batch)?;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot record deal states from the chain");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    Ok(())
}

/// Reads and records the state of each of `ids` the solver knows.
async fn record_states(state: &AppState, chain: &dyn DealsChain, ids: BTreeSet<B256>) -> Result<(), RefreshError> {
    for id in ids {
        match state.refresh_deal(chain, id).await {
            Ok(()) => {}
            // A state this dcn does not know will not become known by reading again.
            Err(RefreshError::Chain(ChainError::Unknown(e))) => {
                tracing::warn!(deal = %id, error = %e, "skipping a deal whose state is unknown");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
