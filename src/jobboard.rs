//! The job board service: follows `DcnJobBoard.JobRequested`, runs each request as a job
//! creator on the network (post, match, create, verify, accept) and delivers the deal id
//! and result hash back with `deliverResult`, which pays the operator and calls the
//! requesting contract back.
//!
//! Requests name modules by plain name only (built-in or the operator's module dir): a
//! request on chain never makes the operator read a path or fetch a repository. Each
//! request is a [`BoardJob`] in the service's [`KvStore`]; the created deal is stored
//! before waiting for its result, so a restart continues the same deal instead of buying
//! the job twice.

use crate::chain::bindings::DcnJobBoard;
use crate::chain::escrow::chain_now;
use crate::chain::logs::{next_logs, start_block};
use crate::chain::units::parse_amount;
use crate::chain::ChainClient;
use crate::config::Settings;
use crate::jobcreator::{Created, JobCreator, JobTerms, LogProgress};
use crate::module::{parse_inputs, resolve::Resolver};
use crate::node::Node;
use crate::solver::client::SolverClient;
use crate::store::KvStore;
use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "requests";
const BLOCK_CURSOR: &str = "block";

/// Where a request is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum BoardStage {
    /// Seen; no deal yet.
    New,
    /// A deal is on chain for it.
    Created {
        /// The deal.
        created: Box<Created>,
    },
    /// Delivered on chain.
    Delivered {
        /// The deal id.
        deal: B256,
        /// The result hash.
        result_hash: B256,
        /// The `deliverResult` transaction.
        tx: B256,
    },
    /// Given up on; the requester can take its payment back after the deadline.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One job board request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoardJob {
    /// The request id.
    pub request: U256,
    /// Where it is.
    pub stage: BoardStage,
}

/// A running job board service.
pub struct JobBoardService {
    chain: ChainClient,
    board: Address,
    creator: JobCreator,
    resolver: Resolver,
    kv: Arc<KvStore>,
    poll: Duration,
}

/// Builds the service for `node` (the board's operator) at `solver`, keeping its state
/// under `state_dir`.
pub async fn build(
    settings: &Settings,
    node: &Node,
    solver: SolverClient,
    state_dir: &std::path::Path,
) -> eyre::Result<Arc<JobBoardService>> {
    use eyre::WrapErr;
    let c = &node.deployment.contracts;
    let board = DcnJobBoard::new(c.job_board, &node.chain.provider);
    let operator = board.operator().call().await.wrap_err("reading the job board's operator")?;
    if operator != node.chain.from {
        eyre::bail!(
            "this account {} is not the job board's operator {operator}: run the job board service with the \
             operator's key (WEB3_PRIVATE_KEY), or have the owner call setOperator",
            node.chain.from
        );
    }
    let cfg = &settings.job;
    let mediators = crate::discovery::find_mediators(&node.chain, c, &settings.services.mediators).await?;
    let creator = JobCreator {
        chain: node.chain.clone(),
        signer: node.signer.clone(),
        contracts: *c,
        solver,
        terms: JobTerms {
            max_price: parse_amount(&cfg.max_price, "job.max_price").map_err(eyre::Report::msg)?,
            mediation_fee: parse_amount(&cfg.mediation_fee, "job.mediation_fee").map_err(eyre::Report::msg)?,
            mediators,
            match_timeout: Duration::from_secs(cfg.match_timeout_secs),
            result_margin_secs: cfg.result_margin_secs,
            judge_timeout_secs: cfg.judge_timeout_secs,
            mediation_timeout_secs: cfg.mediation_timeout_secs,
            poll: Duration::from_millis(cfg.poll_ms.max(20)),
        },
        results_dir: state_dir.join("results"),
    };
    let kv = KvStore::open(&state_dir.join("db")).wrap_err("opening the job board service's database")?;
    Ok(Arc::new(JobBoardService {
        chain: node.chain.clone(),
        board: c.job_board,
        creator,
        resolver: Resolver {
            override_dir: settings.modules.dir.clone(),
            cache_dir: settings.data_dir().join("modules"),
        },
        kv: Arc::new(kv),
        poll: Duration::from_millis(settings.mediator.poll_ms.max(20)),
    }))
}

impl JobBoardService {
    /// Runs until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> eyre::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for job in self.kv.all::<BoardJob>(TABLE)? {
            if matches!(job.stage, BoardStage::New | BoardStage::Created { .. }) {
                tasks.spawn(self.clone().handle(job, stop.clone()));
            }
        }
        let mut next = match self.kv.cursor(BLOCK_CURSOR)? {
            Some(b) => b,
            None => start_block(&self.chain).await?,
        };
        let filter = Filter::new().address(self.board).event_signature(DcnJobBoard::JobRequested::SIGNATURE_HASH);
        tracing::info!(board = %self.board, from_block = next, "job board service ready");
        loop {
            match next_logs(&self.chain, &filter, next).await {
                Ok(Some((logs, n))) => {
                    for log in logs {
                        let Some(&topic) = log.topics().get(1) else { continue };
                        let request = U256::from_be_bytes(topic.0);
                        let key = topic.0;
                        if self.kv.get::<BoardJob>(TABLE, &key)?.is_some() {
                            continue;
                        }
                        let job = BoardJob { request, stage: BoardStage::New };
                        self.kv.put(TABLE, &key, &job)?;
                        tracing::info!(request = %request, "job requested on chain");
                        tasks.spawn(self.clone().handle(job, stop.clone()));
                    }
                    next = n;
                    self.kv.set_cursor(BLOCK_CURSOR, next)?;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading job requests failed; retrying"),
            }
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a job board task failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    fn save(&self, job: &BoardJob) {
        if let Err(e) = self.kv.put(TABLE, &job.request.to_be_bytes::<32>(), job) {
            tracing::error!(request = %job.request, error = %e, "cannot record the request");
        }
    }

    async fn handle(self: Arc<Self>, mut job: BoardJob, stop: CancellationToken) {
        loop {
            let step = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.step(&mut job) => r,
            };
            match step {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(request = %job.request, error = %e, "job board step failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
    }

    fn fail(&self, job: &mut BoardJob, reason: String) -> eyre::Result<bool> {
        tracing::warn!(request = %job.request, %reason, "job board request given up; the requester can get a refund after its deadline");
        job.stage = BoardStage::Failed { reason };
        self.save(job);
        Ok(true)
    }

    /// One step; `Ok(true)` when the request needs nothing more.
    async fn step(&self, job: &mut BoardJob) -> eyre::Result<bool> {
        let board = DcnJobBoard::new(self.board, &self.chain.provider);
        let req = board.getRequest(job.request).call().await?;
        if req.status != 1 {
            job.stage = BoardStage::Failed { reason: format!("request is no longer open (status {})", req.status) };
            self.save(job);
            return Ok(true);
        }
        if chain_now(&self.chain).await? > req.deadline {
            return self.fail(job, "the request's deadline passed".into());
        }
        match job.stage.clone() {
            BoardStage::New => {
                let name = req.module.as_str();
                let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !plain {
                    return self.fail(job, format!("module `{name}` is not a plain module name"));
                }
                let spec = match self
                    .resolver
                    .resolve(name)
                    .and_then(|m| parse_inputs(&req.inputs).and_then(|i| m.job_spec(&i)))
                {
                    Ok(s) => s,
                    Err(e) => return self.fail(job, format!("cannot make a job of it: {e}")),
                };
                let created = match self.creator.place(&spec, &LogProgress).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(request = %job.request, error = %e, "no deal yet; trying again");
                        return Ok(false);
                    }
                };
                tracing::info!(request = %job.request, deal = %created.deal.id, "deal created for the request");
                job.stage = BoardStage::Created { created: Box::new(created) };
                self.save(job);
                Ok(false)
            }
            BoardStage::Created { created } => {
                let outcome = self.creator.finish(&created, false, &LogProgress).await?;
                if outcome.state != "accepted" || outcome.result_hash.is_zero() {
                    // No usable result: buy the job again while the request is open.
                    tracing::warn!(request = %job.request, deal = %outcome.deal_id, state = %outcome.state, "the deal gave no accepted result; trying again");
                    job.stage = BoardStage::New;
                    self.save(job);
                    return Ok(false);
                }
                let receipt = self
                    .chain
                    .send(
                        "delivering the result to the job board",
                        board.deliverResult(job.request, outcome.deal_id, outcome.result_hash),
                    )
                    .await?;
                tracing::info!(request = %job.request, deal = %outcome.deal_id, result_hash = %outcome.result_hash, tx = %receipt.transaction_hash, "result delivered on chain");
                job.stage = BoardStage::Delivered {
                    deal: outcome.deal_id,
                    result_hash: outcome.result_hash,
                    tx: receipt.transaction_hash,
                };
                self.save(job);
                Ok(true)
            }
            BoardStage::Delivered { .. } | BoardStage::Failed { .. } => Ok(true),
        }
    }
}
