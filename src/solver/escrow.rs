//! Offers backed by escrow (THREATS V2): an offer is taken only while its owner's free
//! escrow in `DcnDeals` covers what the offer may lock, so that nobody captures jobs, or a
//! provider's time, with offers backed by nothing.
//!
//! - A resource offer needs its collateral for each slot not already held by one of the
//!   provider's live deals at this solver: `collateral × (slots − live deals)`. Deals of
//!   this provider that are proposed or signed but not yet created are counted as held
//!   (their collateral is locked when the job creator creates them; the provider tops up
//!   when it signs), so a deal created on chain before the solver's follower sees it never
//!   makes an honest provider look short.
//! - A job offer needs its maximum price.
//!
//! The free escrow is read from the chain and kept for [`EscrowBook::ttl`]; a value that
//! falls short is read again before an offer is refused, so a deposit made just before
//! posting always counts. Posting checks the offer ([`EscrowBook::check`]); the
//! `solver/escrow` task ([`watch`]) reads the escrow of every provider with an open
//! resource offer once per `ttl` and closes the offers it no longer backs, so an offer is
//! matched only while backed, within one `ttl`. Job offers are checked when posted only:
//! concurrent jobs of one account share one deposit until each creates its deal (the
//! creator tops up then, and `createDeal` is the last word), so re-checking them would
//! close an honest batch's offers.

use super::api::AppState;
use crate::chain::{AlloyChain, ChainError};
use crate::clock::now_ms;
use crate::protocol::{JobOffer, ResourceOffer};
use crate::units::format_amount;
use alloy::primitives::{Address, U256};
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where free escrow is read.
#[async_trait]
pub trait EscrowSource: Send + Sync {
    /// The free (unlocked) escrow of `account` now, token units.
    async fn free_escrow(&self, account: Address) -> Result<U256, ChainError>;
}

#[async_trait]
impl EscrowSource for AlloyChain {
    async fn free_escrow(&self, account: Address) -> Result<U256, ChainError> {
        Ok(self.escrow_of(account).await?.0)
    }
}

/// Free escrow set by hand, for tests and benchmarks: accounts not set have `default`.
pub struct EscrowTable {
    default: U256,
    set: Mutex<HashMap<Address, U256>>,
}

impl EscrowTable {
    /// A table where every account has `default`.
    pub fn new(default: U256) -> Self {
        Self { default, set: Mutex::new(HashMap::new()) }
    }

    /// Sets `account`'s free escrow.
    pub fn set(&self, account: Address, free: U256) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).insert(account, free);
    }
}

#[async_trait]
impl EscrowSource for EscrowTable {
    async fn free_escrow(&self, account: Address) -> Result<U256, ChainError> {
        Ok(self.set.lock().unwrap_or_else(|p| p.into_inner()).get(&account).copied().unwrap_or(self.default))
    }
}

/// What an offer needs of its owner's free escrow.
pub fn resource_need(offer: &ResourceOffer, live_deals: u32) -> U256 {
    offer.collateral * U256::from(offer.slots.saturating_sub(live_deals))
}

/// What a job offer needs of its creator's free escrow.
pub fn job_need(offer: &JobOffer) -> U256 {
    offer.maxPrice
}

/// Why an offer is not taken.
#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    /// The owner's free escrow does not cover the offer.
    #[error(
        "{account} has {} DCN of free escrow in DcnDeals, but this offer needs {} DCN ({what}): deposit into \
         escrow before posting (providers and `dcn run` deposit what their offers need)",
        format_amount(*free),
        format_amount(*need)
    )]
    Short {
        /// The owner.
        account: Address,
        /// Its free escrow.
        free: U256,
        /// What the offer needs.
        need: U256,
        /// What the need is made of.
        what: &'static str,
    },
    /// The chain could not be read.
    #[error("cannot read {account}'s escrow from the chain: {source}")]
    Chain {
        /// The owner.
        account: Address,
        /// Why.
        source: ChainError,
    },
}

/// Most accounts whose escrow is remembered; the stalest are forgotten beyond it.
const MAX_REMEMBERED: usize = 100_000;
/// Most escrow reads the watcher has in flight.
const WATCH_CONCURRENCY: usize = 8;
/// Most providers the watcher reads per pass (the stalest first).
const WATCH_PER_PASS: usize = 1_000;

/// Free escrow per account as last read from the chain.
pub struct EscrowBook {
    source: Arc<dyn EscrowSource>,
    ttl: Duration,
    seen: Mutex<HashMap<Address, (U256, Instant)>>,
}

impl EscrowBook {
    /// A book reading `source`, keeping each value for `ttl`.
    pub fn new(source: Arc<dyn EscrowSource>, ttl: Duration) -> Self {
        Self { source, ttl, seen: Mutex::new(HashMap::new()) }
    }

    /// How long a value read is used.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn cached(&self, account: &Address) -> Option<(U256, Instant)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(account).copied()
    }

    /// Reads `account`'s free escrow from the chain now, and remembers it.
    pub async fn read(&self, account: Address) -> Result<U256, EscrowError> {
        let free = self.source.free_escrow(account).await.map_err(|source| EscrowError::Chain { account, source })?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(&account) {
            let ttl = self.ttl;
            seen.retain(|_, (_, at)| at.elapsed() < ttl);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(account, (free, Instant::now()));
        Ok(free)
    }

    /// Whether `account`'s free escrow covers `need` (`what` names it in the refusal): a
    /// fresh remembered value that covers it is taken, anything else is read again.
    pub async fn check(&self, account: Address, need: U256, what: &'static str) -> Result<(), EscrowError> {
        if need.is_zero() {
            return Ok(());
        }
        if let Some((free, at)) = self.cached(&account) {
            if free >= need && at.elapsed() < self.ttl {
                return Ok(());
            }
        }
        let free = self.read(account).await?;
        if free < need {
            return Err(EscrowError::Short { account, free, need, what });
        }
        Ok(())
    }

    /// The accounts of `accounts`, stalest read first (never read: first of all).
    fn stalest(&self, mut accounts: Vec<Address>) -> Vec<Address> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        accounts.sort_by_key(|a| seen.get(a).map(|(_, at)| *at));
        accounts
    }
}

/// The `solver/escrow` task: once per `ttl`, reads the free escrow of the providers with
/// open resource offers (the stalest first, at most [`WATCH_PER_PASS`]) and closes the
/// offers it no longer backs. A provider whose escrow cannot be read keeps its offers.
pub async fn watch(state: AppState, token: CancellationToken) -> Result<(), std::convert::Infallible> {
    let book = state.0.escrow.clone();
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(book.ttl()) => {}
        }
        let providers = book.stalest(state.core().providers_with_open_offers());
        let reads = stream::iter(providers.into_iter().take(WATCH_PER_PASS))
            .map(|p| {
                let book = book.clone();
                async move { (p, book.read(p).await) }
            })
            .buffer_unordered(WATCH_CONCURRENCY);
        let mut reads = std::pin::pin!(reads);
        while let Some((provider, free)) = reads.next().await {
            match free {
                Ok(free) => {
                    if let Err(e) = state.write(|core| core.close_unbacked(provider, free, now_ms())).await {
                        tracing::error!(%provider, error = %e, "cannot close offers no longer backed");
                    }
                }
                Err(e) => {
                    tracing::warn!(%provider, error = %e, "cannot read a provider's escrow; its offers stay open")
                }
            }
        }
    }
}
