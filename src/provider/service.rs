//! The provider service: what it is built from ([`ProviderDeps`], [`Offering`]) and its
//! main loop ([`ProviderService::run`]): deposit collateral, resume stored deals, keep the
//! offer fresh, and sign proposals as the solver's events bring them, each signed deal then
//! driven by its own named task (`drive.rs`).

use super::config::ProviderConfig;
use super::deal::{JobRecord, Stage};
use crate::bundle::BundleError;
use crate::chain::{ChainError, DealsChain};
use crate::executor::{Executor, ExecutorError};
use crate::kv::{KvError, KvStore};
use crate::protocol::records::EventKind;
use crate::protocol::{ClientError, OfferKind, SolverApi};
use crate::runtime::{Backoff, Tasks};
use crate::types::Resources;
use crate::units::format_amount;
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Table of signed deals in the provider's store.
pub(super) const JOBS: &str = "jobs";
/// Table of the offers it posted.
pub(super) const OFFERS: &str = "offers";
/// Cursor of the solver's event log.
const EVENTS_CURSOR: &str = "events";

/// Why a provider step failed. Store failures stop the provider (its records are what
/// keeps it from paying twice); the others are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The chain did not answer, or a transaction failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The solver did not answer or refused.
    #[error(transparent)]
    Solver(#[from] ClientError),
    /// The provider's own store failed.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The machine could not run the job.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The result bundle could not be written.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// The solver holds a different bundle for the deal than the one this provider made.
    #[error("the solver holds another bundle for deal {deal} (sha256 {theirs}, this provider's is {ours})")]
    ForeignBundle {
        /// The deal.
        deal: B256,
        /// What the solver holds.
        theirs: B256,
        /// This provider's bundle.
        ours: B256,
    },
}

impl ProviderError {
    /// Whether the provider must stop rather than retry.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// What the provider offers, settled at start from its config, the machine and the
/// registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offering {
    /// One slot's resources.
    pub slot: Resources,
    /// Mediators it trusts.
    pub mediators: Vec<Address>,
}

/// What the provider works with, passed in by its composition root.
pub struct ProviderDeps {
    /// This provider's key (off-chain signatures; the chain signs with the same account).
    pub signer: PrivateKeySigner,
    /// The deals contract.
    pub chain: Arc<dyn DealsChain>,
    /// The solver it works through.
    pub solver: Arc<dyn SolverApi>,
    /// Runs the jobs.
    pub executor: Arc<dyn Executor>,
    /// Its records.
    pub kv: KvStore,
}

/// A running provider.
pub struct ProviderService {
    pub(super) cfg: ProviderConfig,
    pub(super) offering: Offering,
    pub(super) work_dir: PathBuf,
    pub(super) signer: PrivateKeySigner,
    pub(super) chain: Arc<dyn DealsChain>,
    pub(super) solver: Arc<dyn SolverApi>,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) kv: KvStore,
    pub(super) active: Mutex<HashSet<B256>>,
    /// Told whenever a slot is freed, for a proposal waiting for one.
    pub(super) slot_freed: tokio::sync::Notify,
    pub(super) current_offer: Mutex<Option<(B256, u64)>>,
    pub(super) deals_domain: Eip712Domain,
}

impl ProviderService {
    /// The provider with `cfg` offering `offering`, with job work directories under
    /// `work_dir`.
    pub fn new(cfg: ProviderConfig, offering: Offering, work_dir: PathBuf, deps: ProviderDeps) -> Arc<Self> {
        let info = deps.solver.info();
        let deals_domain = crate::chain::deals::domain(info.chain_id, info.deals_contract);
        Arc::new(Self {
            cfg,
            offering,
            work_dir,
            signer: deps.signer,
            chain: deps.chain,
            solver: deps.solver,
            executor: deps.executor,
            kv: deps.kv,
            active: Mutex::new(HashSet::new()),
            slot_freed: tokio::sync::Notify::new(),
            current_offer: Mutex::new(None),
            deals_domain,
        })
    }

    pub(super) fn me(&self) -> Address {
        self.signer.address()
    }

    pub(super) fn save(&self, job: &JobRecord) -> Result<(), KvError> {
        self.kv.put(JOBS, job.deal.id.as_slice(), job)
    }

    pub(super) fn release(&self, id: &B256) {
        if self.active.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
            self.slot_freed.notify_waiters();
        }
    }

    /// Starts the task driving `job` to its end.
    pub(super) fn spawn_deal(self: &Arc<Self>, tasks: &Tasks, job: JobRecord) {
        let name = format!("provider/deal {}", job.deal.id);
        tasks.spawn(name, self.clone().drive(job, tasks.token().clone()));
    }

    /// Runs until the tasks' token is cancelled: deposits collateral when short, resumes
    /// stored deals, posts the offer, follows the solver's events. On stop, and when it
    /// fails, cancels the open offer so that no job waits for a provider that is gone; deals
    /// in flight resume at the next start.
    pub async fn run(self: Arc<Self>, tasks: Tasks) -> Result<(), ProviderError> {
        let result = self.serve(&tasks).await;
        let current = self.current_offer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((id, _)) = current {
            if let Err(e) = self.solver.cancel_offer(&self.signer, id, OfferKind::Resource).await {
                tracing::debug!(offer = %id, error = %e, "could not cancel the offer at shutdown");
            }
        }
        tracing::info!("provider stopped");
        result
    }

    async fn serve(self: &Arc<Self>, tasks: &Tasks) -> Result<(), ProviderError> {
        let token = tasks.token().clone();
        let need = self.cfg.collateral * U256::from(self.cfg.slots);
        let deposited = self.chain.ensure_free_escrow(need).await?;
        if !deposited.is_zero() {
            tracing::info!(amount = %format_amount(deposited), "deposited collateral into escrow");
        }
        for job in self.kv.all::<JobRecord>(JOBS)? {
            if job.stage != Stage::Done {
                tracing::info!(deal = %job.deal.id, stage = ?job.stage, "resuming deal");
                self.active.lock().unwrap_or_else(|p| p.into_inner()).insert(job.deal.id);
                self.spawn_deal(tasks, job);
            }
        }
        self.cancel_stale_offers().await;
        let mut since = self.kv.cursor(EVENTS_CURSOR)?.unwrap_or(0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut reconnect = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        loop {
            let mut events = tokio::select! {
                _ = token.cancelled() => return Ok(()),
                r = self.solver.events(self.me(), since) => match r {
                    Ok(s) => s,
                    Err(e) => {
                        let delay = reconnect.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot follow the solver's events");
                        tokio::select! {
                            _ = token.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(delay) => continue,
                        }
                    }
                },
            };
            loop {
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    _ = tick.tick() => {
                        if let Err(e) = self.keep_offer_fresh().await {
                            tracing::warn!(error = %e, "cannot post the resource offer; retrying");
                        }
                    }
                    ev = events.next() => match ev {
                        Some(Ok(ev)) => {
                            reconnect.reset();
                            since = ev.seq;
                            match ev.kind {
                                EventKind::Deal { deal } => {
                                    if let Some(job) = self.consider(*deal).await? {
                                        self.spawn_deal(tasks, job);
                                    }
                                }
                                EventKind::OfferCancelled { offer } => self.offer_closed(offer),
                                _ => {}
                            }
                            self.kv.set_cursor(EVENTS_CURSOR, since)?;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "the solver's event stream failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("the solver closed the event stream; reconnecting");
                            break;
                        }
                    }
                }
            }
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = tokio::time::sleep(reconnect.next_delay()) => {}
            }
        }
    }
}
