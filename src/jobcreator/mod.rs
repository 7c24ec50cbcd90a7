//! The job creator's side of a deal, shared by the two roles that buy jobs: `dcn run` (a
//! person) and the job board service (a contract's proxy, through its `Buyer` port).
//!
//! [`JobCreator::place`] posts a job offer, waits for the match and creates the deal on
//! chain with the provider's signature (`place.rs`); [`JobCreator::finish`] then follows the
//! deal to its end (`settle.rs`): a pure [`settle::decide`] step (the deal on chain, the
//! chain's clock and what the bundle check found → wait, verify, accept, challenge or claim
//! a timeout) driven by a thin loop. `verify.rs` downloads the bundle and checks it against
//! the chain; a local failure (disk, permissions) stops with a message and never
//! challenges. [`config`] resolves the terms; [`progress`] shows the steps; [`local`] runs
//! a module on this machine for its author.

pub mod config;
pub mod journal;
pub mod local;
mod place;
pub mod progress;
pub mod settle;
#[cfg(test)]
mod tests;
mod verify;

pub use config::{JobCreatorConfig, JobTerms, RunOverrides};
pub use progress::{LogProgress, Progress, Step, TerminalProgress};
pub use settle::{Outcome, Verification};

use crate::chain::{ChainError, DealsChain};
use crate::protocol::{ClientError, ProtocolError, SolverApi};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How the solver's deal differs from what was offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DealMismatch {
    /// Its id is not the hash of its terms.
    #[error("its id is not the hash of its terms")]
    Id,
    /// It names another job creator, solver or job.
    #[error("it names another job creator, solver or job")]
    Parties,
    /// Its price is over the maximum, or its fee is not the offer's.
    #[error("price {price} is over the maximum {max}, or the mediation fee differs")]
    Price {
        /// The deal's price.
        price: U256,
        /// The offer's maximum.
        max: U256,
    },
    /// Its audit terms or timeouts are not the offer's.
    #[error("its audit terms or timeouts differ from the offer's")]
    Terms,
    /// It does not name every mediator both sides trust, or too few of them (THREATS P5,
    /// J9, SO2: a hand-picked mediator).
    #[error("its mediators are not the ones both sides trust: {0}")]
    Mediators(String),
    /// A fake result would not lose its provider money in expectation: the audit chance
    /// times price plus collateral is not more than the price.
    #[error(
        "a fake result would pay its provider: audit chance {audit_ppm} ppm × (price {price} + collateral {collateral})          is not more than the price (raise job.audit_ppm, or buy from providers with more collateral)"
    )]
    Deterrence {
        /// The deal's price.
        price: U256,
        /// The provider's collateral.
        collateral: U256,
        /// The audit chance, parts per million.
        audit_ppm: u32,
    },
    /// It carries no provider signature, or a bad one.
    #[error("its provider signature is missing or wrong: {0}")]
    Signature(String),
}

impl From<ProtocolError> for DealMismatch {
    fn from(e: ProtocolError) -> Self {
        Self::Signature(e.to_string())
    }
}

/// Why buying a job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobCreatorError {
    /// The chain did not answer, or a transaction failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The solver did not answer or refused.
    #[error(transparent)]
    Solver(#[from] ClientError),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// No provider took the job in time; the offer was cancelled and nothing was locked.
    #[error(
        "no provider took the job within {secs} s{}; nothing was locked. Is a provider running (`dcn provider`, \
         or `dcn dev`)? Check that one offers module `{module}`, enough resources and a price up to {max_price} \
         DCN (job.max_price, --max-price){}",
        if *.cancelled { " (offer cancelled)" } else { "" },
        .refused.as_ref().map(|r| format!(". {r}")).unwrap_or_default()
    )]
    NoMatch {
        /// How long it waited.
        secs: u64,
        /// The module.
        module: String,
        /// The most it would pay (decimal).
        max_price: String,
        /// Whether the offer was cancelled at the solver.
        cancelled: bool,
        /// The last refusal a provider gave, as a sentence (its words escaped).
        refused: Option<String>,
    },
    /// The solver proposed a deal unlike the offer: it was not created.
    #[error("the solver's deal {deal} is not what was offered: {why}")]
    BadDeal {
        /// The deal.
        deal: B256,
        /// How it differs.
        why: DealMismatch,
    },
    /// The provider's signed deal cannot be created by its doing (THREATS N3): nothing was
    /// sent for it, and the solver was told.
    #[error(
        "provider {provider}'s signed deal {deal} cannot be created: {fault}. Nothing was spent on it and the \
         solver was told (it pauses such a provider): run the job again"
    )]
    ProviderFault {
        /// The deal.
        deal: B256,
        /// Its provider.
        provider: Address,
        /// What is wrong on the provider's side.
        fault: crate::chain::ProviderFault,
    },
    /// Something failed on this machine (disk full, permissions): nothing was challenged.
    #[error(
        "{what}: {source}. This is a problem on this machine (disk space, permissions), not the provider's: \
         nothing was challenged. Fix it and run again before the judge deadline"
    )]
    Local {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The deal it created is not on chain (a reorg, or a development chain that was reset).
    #[error("deal {deal} is not on chain any more: it was created, but the chain no longer has it")]
    Vanished {
        /// The deal.
        deal: B256,
    },
    /// Stopped (Ctrl-C, or the service stopping) before the deal ended.
    #[error("stopped before the deal ended")]
    Interrupted,
}

/// A job creator account at a solver.
#[derive(Clone)]
pub struct JobCreator {
    /// The terms it offers.
    pub terms: JobTerms,
    /// The mediators it trusts.
    pub mediators: Vec<Address>,
    /// Where results go (`<dir>/<deal id>/`).
    pub results_dir: PathBuf,
    /// Its key, for off-chain signatures (the chain signs with the same account).
    pub signer: PrivateKeySigner,
    /// The deals contract.
    pub chain: Arc<dyn DealsChain>,
    /// The solver.
    pub solver: Arc<dyn SolverApi>,
    /// Cancelled when it should stop waiting.
    pub token: CancellationToken,
    /// Whether it follows an audit drawn after its acceptance to the verdict (the job
    /// board, which delivers only a paid result) or leaves it there (`dcn run`).
    pub follow_audits: bool,
}

impl JobCreator {
    fn me(&self) -> Address {
        self.signer.address()
    }

    /// Sleeps `d`, or fails with [`JobCreatorError::Interrupted`] if the token is cancelled.
    async fn pause(&self, d: std::time::Duration) -> Result<(), JobCreatorError> {
        tokio::select! {
            _ = self.token.cancelled() => Err(JobCreatorError::Interrupted),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Waits for a block `heads` has not seen, at most `d`; fails with
    /// [`JobCreatorError::Interrupted`] if the token is cancelled.
    async fn until_block(
        &self,
        heads: &mut crate::chain::Heads,
        d: std::time::Duration,
    ) -> Result<(), JobCreatorError> {
        tokio::select! {
            _ = self.token.cancelled() => Err(JobCreatorError::Interrupted),
            _ = heads.wait(d) => Ok(()),
        }
    }
}
