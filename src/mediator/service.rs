//! The mediator service: follows `DealChallenged`, `DealAudited` and `AppealDrawn` logs
//! (the last only when they draw this mediator), records each case before acting on it,
//! and drives each by its own named task through [`decide`]: fetch the deal from the solver
//! (checked against its id), skip disputes of deals that do not name this mediator, draw the
//! mediator if nobody did, and when drawn fetch the spec (checked against the deal's job
//! hash), re-run the job, and rule (`mediate`, or `ruleAppeal` for an appeal).

use super::case::{decide, not_reproducible, Action, Closed, Mediation};
use super::config::{Fault, MediatorConfig};
use crate::bundle::{self, BundleError};
use crate::chain::bindings::DcnDeals;
use crate::chain::deals::{deal_id, domain};
use crate::chain::{ChainError, DealRef, DealsChain, LogSource};
use crate::executor::{Executor, ExecutorError};
use crate::kv::{KvError, KvStore};
use crate::protocol::records::OfferRecord;
use crate::protocol::{ClientError, OfferKind, SolverApi};
use crate::runtime::{Backoff, CursorError, Follower, KvCursor, Start, Tasks};
use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "mediations";
const BLOCK_CURSOR: &str = "block";

/// Why a mediation step failed. Store failures stop the mediator; the others are retried
/// with backoff until the mediation deadline.
#[derive(Debug, thiserror::Error)]
pub enum MediatorError {
    /// The chain did not answer, or a transaction failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The solver did not answer or refused.
    #[error(transparent)]
    Solver(#[from] ClientError),
    /// The mediator's own store failed.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The log cursor could not be stored.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The machine could not run the job.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The re-run's bundle could not be written.
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
    /// The solver's terms for the deal do not hash to its id: not run.
    #[error("the solver's terms for deal {0} do not hash to its id: refusing to run them")]
    TermsMismatch(B256),
    /// The solver's job for the deal is not a job offer.
    #[error("the solver names a resource offer as deal {0}'s job")]
    NotAJobOffer(B256),
    /// The solver's job spec is not the one the deal commits to: not run.
    #[error(
        "the job spec from the solver hashes to {spec}, not deal {deal}'s job hash {expected}: refusing to run it"
    )]
    SpecMismatch {
        /// The deal.
        deal: B256,
        /// What the spec hashes to.
        spec: B256,
        /// The deal's job hash.
        expected: B256,
    },
}

impl MediatorError {
    /// Whether the mediator must stop rather than retry.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Cursor(_))
    }

    /// Whether this machine cannot run the job however often it tries (so the mediator
    /// abstains): the image is not here, the spec is invalid or wants the network, the
    /// output cannot be bundled. Docker down, a full disk, an unreachable solver or a spec
    /// from the solver that is not the deal's are retried until the deadline instead.
    pub fn cannot_run(&self) -> bool {
        match self {
            Self::Executor(e) => e.is_permanent(),
            Self::Bundle(e) => !matches!(e, BundleError::Io { .. }),
            _ => false,
        }
    }
}

/// What the mediator works with, passed in by its composition root.
pub struct MediatorDeps {
    /// This mediator's account.
    pub account: Address,
    /// The deals contract.
    pub chain: Arc<dyn DealsChain>,
    /// Its logs.
    pub logs: Arc<dyn LogSource>,
    /// The `DcnDeals` address, for the log filter.
    pub deals_contract: Address,
    /// The solver job specs come from.
    pub solver: Arc<dyn SolverApi>,
    /// Runs the jobs again.
    pub executor: Arc<dyn Executor>,
    /// Its records.
    pub kv: KvStore,
}

/// A running mediator.
pub struct MediatorService {
    cfg: MediatorConfig,
    work_dir: PathBuf,
    deps: MediatorDeps,
}

impl MediatorService {
    /// The mediator with `cfg`, re-running jobs in directories under `work_dir`.
    pub fn new(cfg: MediatorConfig, work_dir: PathBuf, deps: MediatorDeps) -> Arc<Self> {
        Arc::new(Self { cfg, work_dir, deps })
    }

    fn save(&self, m: &Mediation) -> Result<(), KvError> {
        self.deps.kv.put(TABLE, &m.key(), m)
    }

    fn spawn_case(self: &Arc<Self>, tasks: &Tasks, m: Mediation) {
        tasks.spawn(format!("mediator/deal {}", m.deal), self.clone().mediate(m, tasks.token().clone()));
    }

    /// Runs until the tasks' token is cancelled.
    pub async fn run(self: Arc<Self>, tasks: Tasks) -> Result<(), MediatorError> {
        for m in self.deps.kv.all::<Mediation>(TABLE)? {
            if m.closed.is_none() {
                tracing::info!(deal = %m.deal, "resuming mediation");
                self.spawn_case(&tasks, m);
            }
        }
        // Every dispute: whether the deal names this mediator is read by the case's task,
        // which retries what fails; an appeal only when it drew this mediator.
        let events = vec![
            DcnDeals::DealChallenged::SIGNATURE_HASH,
            DcnDeals::DealAudited::SIGNATURE_HASH,
            DcnDeals::AppealDrawn::SIGNATURE_HASH,
        ];
        let filter = Filter::new().address(self.deps.deals_contract).event_signature(events);
        let cursor = Box::new(KvCursor::new(self.deps.kv.clone(), BLOCK_CURSOR));
        let start = Start::BeforeHead(1_000);
        let mut follower = Follower::new("mediator", self.deps.logs.clone(), filter, cursor, start, self.cfg.poll)?;
        tracing::info!(mediator = %self.deps.account, "mediator ready: watching for challenges, audits and appeals");
        let me = self.deps.account.into_word();
        while let Some(batch) = follower.next(tasks.token()).await {
            for log in &batch.logs {
                let topics = log.topics();
                let Some(&id) = topics.get(1) else { continue };
                let appeal = topics.first() == Some(&DcnDeals::AppealDrawn::SIGNATURE_HASH);
                if appeal && topics.get(2) != Some(&me) {
                    continue;
                }
                let mut m = Mediation::new(id);
                m.appeal = appeal;
                m.since_block = log.block_number.unwrap_or_default();
                // A new round of a dispute this mediator already follows is its task's.
                if self.deps.kv.get::<Mediation>(TABLE, &m.key())?.is_some() {
                    continue;
                }
                self.save(&m)?;
                tracing::debug!(deal = %id, appeal, "case seen");
                self.spawn_case(&tasks, m);
            }
            follower.commit(&batch)?;
        }
        tracing::info!("mediator stopped");
        Ok(())
    }

    /// Drives one challenge until it is closed or `token` is cancelled.
    async fn mediate(self: Arc<Self>, mut m: Mediation, token: CancellationToken) -> Result<(), MediatorError> {
        let mut backoff = Backoff::new(self.cfg.poll.max(Duration::from_secs(1)), Duration::from_secs(30));
        while !token.is_cancelled() {
            // A step cut short by the stop is safe to drop: the chain is read before the
            // verdict, and a dropped re-run removes its container.
            let step = tokio::select! {
                _ = token.cancelled() => break,
                step = self.step(&mut m) => step,
            };
            match step {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    backoff.reset();
                    continue;
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(deal = %m.deal, error = %e, retry_in_ms = delay.as_millis() as u64, "mediation step failed; retrying");
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// One observe-decide-act step; `Ok(true)` once the mediation is closed.
    pub(super) async fn step(&self, m: &mut Mediation) -> Result<bool, MediatorError> {
        let id = m.deal;
        let Some(deal) = m.deal_ref.clone() else {
            let named = self.load_deal(m).await?;
            if named {
                let what = if m.appeal {
                    "an appeal drawn to this mediator"
                } else {
                    "a dispute of a deal naming this mediator"
                };
                tracing::info!(deal = %id, "{what}: following it");
            } else {
                m.closed = Some(Closed::NotOurs);
            }
            self.save(m)?;
            return Ok(!named);
        };
        let view = self.deps.chain.deal(&deal).await?;
        let now = self.deps.chain.now().await?;
        match decide(m, &view, now, self.deps.account) {
            Action::Wait => {
                // Another mediator holds the round (or nobody drew in time): nothing for
                // this one to do for a while. Ten polls apart, so a mediator named in many
                // deals does not read the chain for each of them twice a second.
                tokio::time::sleep(self.cfg.poll * 10).await;
                Ok(false)
            }
            Action::Draw => {
                let tx = self.deps.chain.draw(&deal).await?;
                tracing::info!(deal = %id, %tx, "drew the dispute's mediator");
                Ok(false)
            }
            Action::Rerun => {
                let mine = match self.rerun(m).await {
                    Ok(h) => h,
                    Err(e) if e.cannot_run() => {
                        tracing::warn!(deal = %id, error = %e, "cannot run this job: abstaining, so that another mediator is drawn at the deadline");
                        m.closed = Some(Closed::Abstained);
                        self.save(m)?;
                        self.remove_work_dir(id);
                        return Ok(true);
                    }
                    Err(e) => return Err(e),
                };
                let run = if m.rerun.is_none() { "first" } else { "second" };
                tracing::info!(deal = %id, mine = %mine, provider = %view.result_hash, run, "re-ran the job");
                if m.rerun.is_none() {
                    m.rerun = Some(mine);
                } else {
                    m.second_run = Some(mine);
                }
                self.save(m)?;
                if not_reproducible(m) {
                    tracing::warn!(deal = %id, "the job's two re-runs differ: it is not reproducible, so the provider is not blamed");
                }
                Ok(false)
            }
            Action::Rule { provider_honest } => {
                let provider_honest = match self.cfg.fault {
                    Some(Fault::WrongVerdict) => {
                        tracing::warn!(deal = %id, "fault injection: ruling the opposite of the re-run");
                        !provider_honest
                    }
                    None => provider_honest,
                };
                let tx = if m.appeal {
                    self.deps.chain.rule_appeal(&deal, provider_honest).await?
                } else {
                    self.deps.chain.mediate(&deal, provider_honest).await?
                };
                m.provider_honest = Some(provider_honest);
                m.tx = Some(tx);
                self.save(m)?;
                let verdict = if provider_honest { "honest" } else { "dishonest" };
                let what = if m.appeal { "appeal verdict on chain" } else { "verdict on chain" };
                tracing::info!(deal = %id, verdict, %tx, "{what}");
                Ok(false)
            }
            Action::Close(closed) => {
                match closed {
                    Closed::DeadlinePassed => {
                        tracing::warn!(deal = %id, "the mediation deadline passed before a verdict")
                    }
                    Closed::NotOurs => tracing::info!(deal = %id, "not this mediator's case"),
                    Closed::Settled(s) => tracing::info!(deal = %id, state = %s, "mediation closed"),
                    Closed::Abstained => {}
                }
                m.closed = Some(closed);
                self.save(m)?;
                self.remove_work_dir(id);
                Ok(true)
            }
        }
    }

    /// Fetches the deal from the solver, checks its terms against its id and keeps them;
    /// returns whether the case is this mediator's (an appeal drawn to it, or a deal that
    /// names it).
    async fn load_deal(&self, m: &mut Mediation) -> Result<bool, MediatorError> {
        let id = m.deal;
        let deal = self.deps.solver.deal(id).await?;
        let info = self.deps.solver.info();
        if deal_id(&deal.deal, &domain(info.chain_id, info.deals_contract)) != id {
            return Err(MediatorError::TermsMismatch(id));
        }
        let named = m.appeal || deal.deal.mediators.contains(&self.deps.account);
        m.named = Some(named);
        m.job_offer = deal.job_offer;
        m.deal_ref = Some(DealRef { id, deal: deal.deal, since_block: m.since_block });
        Ok(named)
    }

    /// Removes deal `id`'s work directory once its mediation is closed.
    fn remove_work_dir(&self, id: B256) {
        let dir = self.work_dir.join(id.to_string());
        if let Err(e) = crate::executor::scratch::remove_work_dir(&dir) {
            tracing::warn!(deal = %id, dir = %dir.display(), error = %e, "cannot remove the work directory");
        }
    }

    /// Fetches the case's job, checks it against the deal, runs it and returns its result
    /// hash.
    async fn rerun(&self, m: &Mediation) -> Result<B256, MediatorError> {
        let id = m.deal;
        let job_hash = m.deal_ref.as_ref().map(|d| d.deal.jobHash).unwrap_or_default();
        let spec = match self.deps.solver.offer(m.job_offer, OfferKind::Job).await? {
            OfferRecord::Job(j) => j.signed.spec,
            OfferRecord::Resource(_) => return Err(MediatorError::NotAJobOffer(id)),
        };
        let hash = spec.content_hash();
        if hash != job_hash {
            return Err(MediatorError::SpecMismatch { deal: id, spec: hash, expected: job_hash });
        }
        let dir = self.work_dir.join(id.to_string());
        let io = |what: &'static str| {
            let what = format!("{what} {}", dir.display());
            move |source| MediatorError::Io { what, source }
        };
        crate::executor::scratch::remove_work_dir(&dir).map_err(io("clearing"))?;
        std::fs::create_dir_all(&dir).map_err(io("creating"))?;
        let outcome = self.deps.executor.run(&spec, &dir).await?;
        // By the job's own output limit, as the provider packs it: an output over it is the
        // error bundle on both sides, and an honest provider is not blamed for it.
        Ok(bundle::pack(outcome.results(), spec.output_limit_bytes(), &dir.join("bundle.tar"))?.hash)
    }
}
