//! The job board service: follows `DcnJobBoard.JobRequested`, records each request before
//! acting on it, and drives each by its own named task through [`decide`]: buy the job as a
//! job creator (through the [`Buyer`] port), follow the deal, and deliver the result hash
//! back with `deliverResult`, which pays the operator and calls the requester back.

use super::config::JobBoardConfig;
use super::request::{decide, is_plain_module, retry_delay, worth_buying, Action, BoardJob, BoardStage, Failure};
use crate::chain::bindings::DcnJobBoard;
use crate::chain::{BoardChain, ChainError, DealState, DealsChain, LogSource};
use crate::kv::{KvError, KvStore};
use crate::module::parse_inputs;
use crate::protocol::records::{CreatedDeal, DealRecord};
use crate::runtime::{Backoff, CursorError, Follower, KvCursor, Start, Tasks};
use crate::types::JobSpec;
use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "requests";
const BLOCK_CURSOR: &str = "block";

/// How a bought deal ended, as the board needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The final state on chain.
    pub state: DealState,
    /// The result hash on chain (zero if none came).
    pub result_hash: B256,
}

/// A purchase that did not work out; it is tried again (after a backoff) while the request
/// is open.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BuyError(pub Box<dyn std::error::Error + Send + Sync>);

/// The job board's port to the job creator: buying a job and following its deal.
#[async_trait]
pub trait Buyer: Send + Sync {
    /// Offers `spec` on the network for at most `max_price` token units and waits for a
    /// provider's signed deal, checked against the offer. Nothing is on chain yet: the
    /// board records the deal before it [`create`](Buyer::create)s it.
    async fn buy(&self, spec: &JobSpec, max_price: U256) -> Result<DealRecord, BuyError>;
    /// Creates the signed `deal` for `spec` on chain; `None` when it can never be created by
    /// its provider's doing (THREATS N3: nothing was sent, the solver was told): buy again.
    async fn create(&self, deal: &DealRecord, spec: &JobSpec) -> Result<Option<CreatedDeal>, BuyError>;
    /// Follows `deal` to its end: verified and accepted, or otherwise settled.
    async fn settle(&self, deal: &CreatedDeal) -> Result<Settlement, BuyError>;
}

/// Why a job board step failed. Store failures stop the service; the others are retried
/// with backoff while the request is open.
#[derive(Debug, thiserror::Error)]
pub enum JobBoardError {
    /// The chain did not answer, or a transaction failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The service's own store failed.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The log cursor could not be stored.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// Following the deal failed.
    #[error(transparent)]
    Buy(#[from] BuyError),
}

impl JobBoardError {
    /// Whether the service must stop rather than retry.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Cursor(_))
    }
}

/// What the job board service works with, passed in by its composition root.
pub struct JobBoardDeps {
    /// The board contract, as its operator.
    pub board: Arc<dyn BoardChain>,
    /// The chain's clock.
    pub chain: Arc<dyn DealsChain>,
    /// The board's logs.
    pub logs: Arc<dyn LogSource>,
    /// The board's address, for the log filter.
    pub board_contract: Address,
    /// Buys the jobs.
    pub buyer: Arc<dyn Buyer>,
    /// Its records.
    pub kv: KvStore,
}

/// A running job board service.
pub struct JobBoardService {
    cfg: JobBoardConfig,
    deps: JobBoardDeps,
}

impl JobBoardService {
    /// The service with `cfg`.
    pub fn new(cfg: JobBoardConfig, deps: JobBoardDeps) -> Arc<Self> {
        Arc::new(Self { cfg, deps })
    }

    fn save(&self, job: &BoardJob) -> Result<(), KvError> {
        self.deps.kv.put(TABLE, &job.request.to_be_bytes::<32>(), job)
    }

    /// The stored record of `request`, if any.
    pub fn stored(&self, request: U256) -> Result<Option<BoardJob>, KvError> {
        self.deps.kv.get(TABLE, &request.to_be_bytes::<32>())
    }

    fn spawn_request(self: &Arc<Self>, tasks: &Tasks, job: BoardJob) {
        tasks.spawn(format!("jobboard/request {}", job.request), self.clone().handle(job, tasks.token().clone()));
    }

    /// Runs until the tasks' token is cancelled.
    pub async fn run(self: Arc<Self>, tasks: Tasks) -> Result<(), JobBoardError> {
        for job in self.deps.kv.all::<BoardJob>(TABLE)? {
            if !job.is_over() {
                self.spawn_request(&tasks, job);
            }
        }
        let filter =
            Filter::new().address(self.deps.board_contract).event_signature(DcnJobBoard::JobRequested::SIGNATURE_HASH);
        let cursor = Box::new(KvCursor::new(self.deps.kv.clone(), BLOCK_CURSOR));
        let start = Start::BeforeHead(1_000);
        let mut follower = Follower::new("jobboard", self.deps.logs.clone(), filter, cursor, start, self.cfg.poll)?;
        tracing::info!(board = %self.deps.board_contract, "job board service ready");
        while let Some(batch) = follower.next(tasks.token()).await {
            for log in &batch.logs {
                let Some(&topic) = log.topics().get(1) else { continue };
                let request = U256::from_be_bytes(topic.0);
                if self.deps.kv.get::<BoardJob>(TABLE, &topic.0)?.is_some() {
                    continue;
                }
                let job = BoardJob::new(request);
                self.save(&job)?;
                tracing::info!(%request, "job requested on chain");
                self.spawn_request(&tasks, job);
            }
            follower.commit(&batch)?;
        }
        tracing::info!("job board service stopped");
        Ok(())
    }

    /// Drives one request until nothing is left to do or `token` is cancelled.
    pub(super) async fn handle(
        self: Arc<Self>,
        mut job: BoardJob,
        token: CancellationToken,
    ) -> Result<(), JobBoardError> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        while !token.is_cancelled() {
            let wait = match self.step(&mut job, &token).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => {
                    backoff.reset();
                    wait
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(request = %job.request, error = %e, retry_in_ms = delay.as_millis() as u64, "job board step failed; retrying");
                    delay
                }
            };
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// Records that `job` is given up for `reason`, and says so.
    fn give_up(&self, job: &mut BoardJob, reason: Failure) -> Result<(), JobBoardError> {
        tracing::warn!(request = %job.request, %reason, "job board request given up; the requester can get a refund after its deadline");
        job.stage = BoardStage::Failed { reason };
        Ok(self.save(job)?)
    }

    /// One observe-decide-act step: `None` when the request needs nothing more, else how
    /// long to wait before the next step.
    async fn step(&self, job: &mut BoardJob, token: &CancellationToken) -> Result<Option<Duration>, JobBoardError> {
        let request = self.deps.board.request(job.request).await?;
        let now = self.deps.chain.now().await?;
        match decide(job, &request, now, self.deps.chain.account()) {
            Action::Done => Ok(None),
            Action::Fail(reason) => {
                self.give_up(job, reason)?;
                Ok(None)
            }
            Action::WaitUntil(t) => Ok(Some(Duration::from_secs(t.saturating_sub(now)).min(self.cfg.poll * 20))),
            Action::Buy => {
                if !is_plain_module(&request.module) {
                    self.give_up(job, Failure::NotPlainModule(request.module.clone()))?;
                    return Ok(None);
                }
                let spec = self
                    .cfg
                    .resolver
                    .resolve(&request.module)
                    .and_then(|m| parse_inputs(&request.inputs).and_then(|i| m.job_spec(&i)));
                let spec = match spec {
                    Ok(s) => s,
                    Err(e) => {
                        self.give_up(job, Failure::BadJob(e.to_string()))?;
                        return Ok(None);
                    }
                };
                // Only the job the request commits to can be delivered (THREATS B1).
                let made = spec.content_hash();
                if made != request.job_hash {
                    self.give_up(job, Failure::WrongJob { requested: request.job_hash, made })?;
                    return Ok(None);
                }
                let max_price = match worth_buying(&request, spec.timeout_secs, now, &self.cfg.worth) {
                    Ok(max) => max,
                    Err(reason) => {
                        self.give_up(job, reason)?;
                        return Ok(None);
                    }
                };
                // Not raced with the token: the buyer watches it and cancels its offer
                // before it gives up.
                match self.deps.buyer.buy(&spec, max_price).await {
                    Ok(deal) => {
                        tracing::info!(request = %job.request, deal = %deal.id, provider = %deal.deal.provider, "a provider signed a deal for the request");
                        let since_block = self.deps.chain.block_number().await?;
                        job.stage = BoardStage::Signed { deal: Box::new(deal), spec: Box::new(spec), since_block };
                        job.attempts = 0;
                    }
                    Err(_) if token.is_cancelled() => return Ok(Some(Duration::ZERO)),
                    Err(e) => {
                        job.attempts += 1;
                        job.retry_at = now + retry_delay(job.attempts);
                        tracing::warn!(request = %job.request, error = %e, attempts = job.attempts, retry_in_secs = retry_delay(job.attempts), "no deal for the request yet");
                    }
                }
                self.save(job)?;
                Ok(Some(Duration::ZERO))
            }
            Action::Create => {
                let BoardStage::Signed { deal, spec, since_block } = &job.stage else {
                    return Ok(Some(Duration::ZERO));
                };
                let created = if self.deps.chain.state(deal.id).await?.state != DealState::None {
                    // Created before a restart that lost the transaction's hash.
                    tracing::info!(request = %job.request, deal = %deal.id, "the signed deal is on chain already");
                    CreatedDeal {
                        deal: (**deal).clone(),
                        spec: (**spec).clone(),
                        create_tx: B256::ZERO,
                        created_block: *since_block,
                    }
                } else if self.deps.chain.block_time().await? > deal.deal.createDeadline {
                    // A mined block is past its creation deadline: it can never be created
                    // (a pending transaction included now would revert), so buy again.
                    tracing::warn!(request = %job.request, deal = %deal.id, "the signed deal was not created before its deadline; buying again");
                    job.stage = BoardStage::New;
                    self.save(job)?;
                    return Ok(Some(Duration::ZERO));
                } else if let Some(created) = self.deps.buyer.create(deal, spec).await? {
                    created
                } else {
                    tracing::warn!(request = %job.request, deal = %deal.id, "the signed deal cannot be created by its provider's doing; buying again");
                    job.stage = BoardStage::New;
                    self.save(job)?;
                    return Ok(Some(Duration::ZERO));
                };
                tracing::info!(request = %job.request, deal = %created.deal.id, "deal created for the request");
                if self.cfg.fault == Some(super::config::BoardFault::ExitAfterCreate) {
                    tracing::warn!("fault injection: exiting after createDeal, before the deal is recorded");
                    std::process::exit(137);
                }
                job.stage = BoardStage::Created { created: Box::new(created) };
                self.save(job)?;
                Ok(Some(Duration::ZERO))
            }
            Action::Claim(deal) => {
                let BoardStage::Created { created } = &job.stage else { return Ok(Some(Duration::ZERO)) };
                let tx = self.deps.board.claim(job.request, &created.deal_ref()).await?;
                tracing::info!(request = %job.request, %deal, %tx, "request claimed with its deal: no refund while it runs");
                Ok(Some(Duration::ZERO))
            }
            Action::Settle => {
                let BoardStage::Created { created } = &job.stage else { return Ok(Some(Duration::ZERO)) };
                let settled = self.deps.buyer.settle(created).await?;
                let deal = created.deal.id;
                if !settled.state.provider_paid() || settled.result_hash.is_zero() {
                    // No usable result: buy the job again while the request is open.
                    tracing::warn!(request = %job.request, %deal, state = %settled.state, "the deal gave no accepted result; buying again");
                    job.stage = BoardStage::New;
                    self.save(job)?;
                    return Ok(Some(Duration::ZERO));
                }
                let tx = self.deps.board.deliver_result(job.request, &created.deal_ref()).await?;
                tracing::info!(request = %job.request, %deal, result_hash = %settled.result_hash, %tx, "result delivered on chain");
                job.stage = BoardStage::Delivered { deal, result_hash: settled.result_hash, tx };
                self.save(job)?;
                Ok(None)
            }
        }
    }
}
