//! The mediator service: follows `DealChallenged` events naming this account, fetches the
//! deal and its job spec from the solver (checking the deal against its id and the spec
//! against the deal's job hash), re-runs the job on its own executor, compares the result
//! hash with the one the provider put on chain and calls `mediate`.
//!
//! Each challenge is a [`Mediation`] record in its [`KvStore`] and the log cursor is
//! stored with it, so a restarted mediator picks up every challenge it has not ruled on;
//! the chain is read before `mediate`, so no verdict is sent twice.

use crate::bundle;
use crate::chain::bindings::DcnDeals;
use crate::chain::escrow::{chain_now, deal_info};
use crate::chain::logs::{next_logs, start_block};
use crate::chain::{ChainClient, Contracts};
use crate::executor::Executor;
use crate::solver::client::SolverClient;
use crate::solver::records::OfferRecord;
use crate::store::KvStore;
use alloy::primitives::B256;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TABLE: &str = "mediations";
const BLOCK_CURSOR: &str = "block";

/// One challenge this mediator was drawn for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mediation {
    /// The deal.
    pub deal: B256,
    /// Whether it is settled (ruled, or no longer ours to rule).
    pub done: bool,
    /// The verdict sent, if any.
    pub provider_honest: Option<bool>,
    /// The `mediate` transaction.
    pub tx: Option<B256>,
    /// Why it ended without a verdict.
    pub note: Option<String>,
}

/// Builds the mediator for `node` at `solver`, keeping its state under `state_dir`, and
/// registers it in `DcnRegistry`.
pub async fn build(
    settings: &crate::config::Settings,
    node: &crate::node::Node,
    solver: SolverClient,
    state_dir: &std::path::Path,
) -> eyre::Result<Arc<MediatorService>> {
    use eyre::WrapErr;
    let me = node.chain.from;
    std::fs::create_dir_all(state_dir)?;
    let labels = std::collections::HashMap::from([
        ("dcn.mediator".to_string(), me.to_string().to_lowercase()),
        ("dcn.instance".to_string(), crate::provider::setup::instance_label(state_dir)),
    ]);
    let executor = crate::node::docker_executor(settings, Default::default(), None, labels).await?;
    if let Ok(n @ 1..) = executor.remove_leftovers().await {
        tracing::info!(n, "removed job containers left by an earlier run");
    }
    let kv = KvStore::open(&state_dir.join("db")).wrap_err("opening the mediator's database")?;
    crate::solver::chain::register(
        &node.chain,
        node.deployment.contracts.registry,
        crate::solver::chain::ROLE_MEDIATOR,
        solver.url(),
        "",
    )
    .await
    .wrap_err("registering the mediator in DcnRegistry")?;
    Ok(MediatorService::new(
        node.chain.clone(),
        node.deployment.contracts,
        solver,
        Arc::new(executor),
        Arc::new(kv),
        Duration::from_millis(settings.mediator.poll_ms.max(20)),
        state_dir.join("jobs"),
    ))
}

/// A running mediator.
pub struct MediatorService {
    chain: ChainClient,
    contracts: Contracts,
    solver: SolverClient,
    executor: Arc<dyn Executor>,
    kv: Arc<KvStore>,
    poll: Duration,
    work_dir: PathBuf,
}

impl MediatorService {
    /// Builds the service.
    pub fn new(
        chain: ChainClient,
        contracts: Contracts,
        solver: SolverClient,
        executor: Arc<dyn Executor>,
        kv: Arc<KvStore>,
        poll: Duration,
        work_dir: PathBuf,
    ) -> Arc<Self> {
        Arc::new(Self { chain, contracts, solver, executor, kv, poll, work_dir })
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> eyre::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for m in self.kv.all::<Mediation>(TABLE)? {
            if !m.done {
                tracing::info!(deal = %m.deal, "resuming mediation");
                tasks.spawn(self.clone().mediate(m, stop.clone()));
            }
        }
        let mut next = match self.kv.cursor(BLOCK_CURSOR)? {
            Some(b) => b,
            None => start_block(&self.chain).await?,
        };
        let filter = Filter::new()
            .address(self.contracts.deals)
            .event_signature(DcnDeals::DealChallenged::SIGNATURE_HASH)
            .topic2(self.chain.from.into_word());
        tracing::info!(mediator = %self.chain.from, from_block = next, "mediator ready: watching for challenges");
        loop {
            match next_logs(&self.chain, &filter, next).await {
                Ok(Some((logs, n))) => {
                    for log in logs {
                        let Some(&id) = log.topics().get(1) else { continue };
                        if self.kv.get::<Mediation>(TABLE, id.as_slice())?.is_some() {
                            continue;
                        }
                        let m = Mediation { deal: id, done: false, provider_honest: None, tx: None, note: None };
                        self.kv.put(TABLE, id.as_slice(), &m)?;
                        tracing::info!(deal = %id, "challenge received: re-running the job");
                        tasks.spawn(self.clone().mediate(m, stop.clone()));
                    }
                    next = n;
                    self.kv.set_cursor(BLOCK_CURSOR, next)?;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading challenges failed; retrying"),
            }
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a mediation task failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::info!("mediator stopped");
        Ok(())
    }

    async fn mediate(self: Arc<Self>, mut m: Mediation, stop: CancellationToken) {
        loop {
            match self.try_mediate(&mut m).await {
                Ok(()) => {
                    m.done = true;
                    if let Err(e) = self.kv.put(TABLE, m.deal.as_slice(), &m) {
                        tracing::error!(deal = %m.deal, error = %e, "cannot record the mediation");
                    }
                    return;
                }
                Err(e) => tracing::warn!(deal = %m.deal, error = %e, "mediation step failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.poll.max(Duration::from_secs(1))) => {}
            }
        }
    }

    /// One attempt; `Ok` when nothing is left to do for this deal.
    async fn try_mediate(&self, m: &mut Mediation) -> eyre::Result<()> {
        let id = m.deal;
        let info = deal_info(&self.chain, &self.contracts, id).await?;
        if info.state != 3 || info.mediator != self.chain.from {
            m.note = Some(format!("deal is in state {} with mediator {}: nothing to rule", info.state, info.mediator));
            tracing::info!(deal = %id, "no longer ours to rule");
            return Ok(());
        }
        if chain_now(&self.chain).await? > info.deadline {
            m.note = Some("the mediation deadline passed".into());
            tracing::warn!(deal = %id, "the mediation deadline passed before a verdict");
            return Ok(());
        }
        let deal = self.solver.deal(id).await?;
        let domain = crate::chain::deals::domain(self.chain.network.chain_id, self.contracts.deals);
        if crate::chain::deals::deal_id(&deal.deal, &domain) != id {
            eyre::bail!("the solver's terms for deal {id} do not hash to its id");
        }
        let spec = match self.solver.offer(deal.job_offer, false).await? {
            OfferRecord::Job(j) => j.signed.spec,
            OfferRecord::Resource(_) => eyre::bail!("the deal's job offer is a resource offer"),
        };
        if spec.content_hash() != deal.deal.jobHash {
            eyre::bail!("the job spec from the solver does not hash to the deal's job hash");
        }
        let dir = self.work_dir.join(id.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let outcome = self.executor.run(&spec, &dir).await?;
        let mine = bundle::write_bundle(&outcome.results(), &dir.join("bundle.tar"))?;
        let honest = mine == info.resultHash;
        tracing::info!(deal = %id, mine = %mine, provider = %info.resultHash, honest, "re-ran the job");
        // Read again: the verdict goes out once.
        let info = deal_info(&self.chain, &self.contracts, id).await?;
        if info.state != 3 {
            m.note = Some("settled while re-running".into());
            return Ok(());
        }
        let deals = DcnDeals::new(self.contracts.deals, &self.chain.provider);
        let receipt = self.chain.send("sending the verdict", deals.mediate(id, honest)).await?;
        m.provider_honest = Some(honest);
        m.tx = Some(receipt.transaction_hash);
        tracing::info!(
            deal = %id,
            verdict = if honest { "honest" } else { "dishonest" },
            tx = %receipt.transaction_hash,
            "verdict on chain"
        );
        Ok(())
    }
}
