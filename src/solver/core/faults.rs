//! A provider's faults and what they cost it (THREATS V2, N3): a proposal it lets lapse, and
//! a signed deal that cannot be created on chain by its doing (a signature the contract
//! refuses, free escrow short of the collateral, the deal cancelled). Each is a strike: its
//! offers are matched with nothing for a while ([`Core::strike`]).
//!
//! The solver never sees a `createDeal` that reverts, so it learns of a failed signed deal
//! in two ways: the chain follower sees `DealCancelled` ([`Core::chain_cancelled`]), and the
//! deal's job creator reports it ([`Core::begin_failure_report`]). A report is never taken
//! on the job creator's word: the API checks it against the chain before
//! [`Core::provider_failed`] (`api/faults.rs`).

#[cfg(test)]
mod tests;

use super::{Core, SolverError};
use crate::chain::ProviderFault;
use crate::protocol::records::{DealRecord, DealStatus};
use crate::protocol::Verified;
use alloy::primitives::{Address, B256};

/// The longest a struck provider is paused, seconds.
pub const LAPSE_PAUSE_MAX_SECS: u64 = 3600;
/// Strikes (lapses, spoilt deals) older than this are forgiven, seconds.
pub const LAPSES_FORGOTTEN_AFTER_SECS: u64 = 3600;

/// A provider's recent strikes (THREATS V2, N3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strikes {
    /// Strikes since the last one was forgiven.
    pub count: u32,
    /// When the last one was, unix seconds.
    pub last: u64,
    /// Paused until, unix seconds.
    pub until: u64,
}

impl Core {
    /// The job creator's report that signed deal `id` cannot be created by its provider's
    /// doing, as far as the core can take it: `auth` is the deal's job creator and the deal
    /// is signed (or already ended with a fault, which answers the report); the request's
    /// nonce is spent, so a replay makes the solver read nothing. Returns the deal, whose
    /// signature the caller checks with the chain before [`Core::provider_failed`].
    pub fn begin_failure_report(&mut self, id: B256, auth: &Verified, now_ms: u64) -> Result<DealRecord, SolverError> {
        let deal = self.deal(&id)?.ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.deal.jobCreator != auth.account {
            return Err(SolverError::Forbidden(format!(
                "only deal {id}'s job creator {} may report that it cannot be created",
                deal.deal.jobCreator
            )));
        }
        if deal.fault.is_none() && deal.state != DealStatus::Signed {
            return Err(SolverError::Conflict(format!(
                "deal {id} is {}: only a signed deal not yet on chain can fail at its creation",
                deal.state.name()
            )));
        }
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth)?;
        self.commit(txn)?;
        Ok(deal)
    }

    /// Signed deal `id` cannot be created by its provider's doing (`fault`, found by the
    /// solver itself): the provider is struck as for a lapse, the deal ends (expired, with
    /// the fault on its record) and its slot is free; its job goes to another provider when
    /// `rematch` and the job offer is still good, else the job offer is closed. A deal that
    /// already ended with a fault is answered as it is.
    pub fn provider_failed(
        &mut self,
        id: B256,
        fault: ProviderFault,
        rematch: bool,
        now_ms: u64,
    ) -> Result<DealRecord, SolverError> {
        let deal = self.deal(&id)?.ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.fault.is_some() {
            return Ok(deal);
        }
        if deal.state != DealStatus::Signed {
            return Err(SolverError::Conflict(format!(
                "deal {id} is {}: only a signed deal not yet on chain can fail at its creation",
                deal.state.name()
            )));
        }
        tracing::warn!(deal = %id, provider = %deal.deal.provider, %fault, "a signed deal cannot be created by its provider's doing");
        // Before the slot is freed, so that it is not handed straight back.
        self.strike(deal.deal.provider, now_ms / 1000, "a deal it signed cannot be created");
        let mut txn = self.txn(now_ms);
        let deal = self.lapse(&mut txn, DealRecord { fault: Some(fault), ..deal }, now_ms, rematch);
        self.commit(txn)?;
        Ok(deal)
    }

    /// The chain says deal `id` was cancelled by its provider (`cancelDeal`). A signed deal
    /// is the provider's fault ([`Core::provider_failed`]; its job goes to another provider,
    /// since its job creator may still be waiting). A proposed one was never signed here:
    /// that is a refusal, which costs nothing. A deal the solver already ended is left so.
    pub fn chain_cancelled(&mut self, id: B256, now_ms: u64) -> Result<(), SolverError> {
        let Some(deal) = self.deal(&id)? else { return Ok(()) };
        match deal.state {
            DealStatus::Signed => {
                self.provider_failed(id, ProviderFault::Cancelled, true, now_ms)?;
            }
            DealStatus::Proposed => {
                tracing::info!(deal = %id, "the provider cancelled a proposed deal on chain");
                let mut txn = self.txn(now_ms);
                self.lapse(&mut txn, DealRecord { fault: Some(ProviderFault::Cancelled), ..deal }, now_ms, true);
                self.commit(txn)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `provider` let a proposal lapse without signing or refusing it (THREATS V2: a
    /// provider that holds jobs without serving them), or a deal it signed cannot be created
    /// by its doing (THREATS N3): its offers are matched with nothing for the sign timeout,
    /// doubling with each strike within an hour of the last, up to an hour. A refusal is an
    /// answer and costs nothing.
    pub(super) fn strike(&mut self, provider: Address, now: u64, why: &'static str) {
        let s = self.strikes.entry(provider).or_insert(Strikes { count: 0, last: 0, until: 0 });
        if s.last + LAPSES_FORGOTTEN_AFTER_SECS <= now {
            s.count = 0;
        }
        s.count = s.count.saturating_add(1);
        s.last = now;
        let base = self.cfg.sign_timeout_secs.max(1);
        let pause = base.saturating_mul(1u64 << (s.count - 1).min(20)).min(LAPSE_PAUSE_MAX_SECS);
        s.until = now + pause;
        tracing::warn!(%provider, strikes = s.count, pause_secs = pause, why, "provider struck: paused");
        self.matcher.pause(provider, s.until);
    }

    /// The provider's recent strikes, if any.
    pub fn strikes(&self, provider: &Address) -> Option<Strikes> {
        self.strikes.get(provider).copied()
    }
}
