//! The provider service: posts resource offers to the solver and keeps them fresh, checks
//! and signs the deals the solver proposes, runs each created deal's job through the
//! [`Executor`], uploads the result bundle, submits its hash on chain and collects the
//! payment (after acceptance, or by calling `timeout` once the judge deadline passed).
//!
//! Every deal it signs is a [`JobRecord`] in its [`KvStore`], written before each step
//! that has an effect outside the process. A restarted provider resumes each record from
//! its stage, reading the chain first, so no transaction is sent twice: a job whose run
//! was cut short is run again, a bundle not yet uploaded is uploaded, a result not yet on
//! chain is submitted. Start at [`ProviderService::run`].

pub mod machine;
pub mod setup;
pub mod terms;

use crate::bundle;
use crate::chain::bindings::DcnDeals;
use crate::chain::escrow::{chain_now, deal_info, ensure_free_escrow};
use crate::chain::{ChainClient, Contracts};
use crate::executor::Executor;
use crate::protocol::{ResourceOffer, SignedResourceOffer};
use crate::solver::client::{now_secs, ClientError, SolverClient};
use crate::solver::records::{DealRecord, DealState, EventKind, OfferRecord, OfferStatus};
use crate::store::KvStore;
use crate::types::{JobSpec, Resources};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const JOBS: &str = "jobs";
const OFFERS: &str = "offers";
const EVENTS_CURSOR: &str = "events";

/// What the provider offers and signs.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// One slot's resources.
    pub slot: Resources,
    /// Jobs at once.
    pub slots: u32,
    /// Price per job, token units.
    pub price: U256,
    /// Collateral per deal, token units.
    pub collateral: U256,
    /// Module allow-list (empty: any).
    pub modules: Vec<String>,
    /// Trusted mediators.
    pub mediators: Vec<Address>,
    /// Offer lifetime, seconds.
    pub offer_ttl_secs: u64,
    /// Deal-term limits.
    pub limits: terms::Limits,
    /// How often the chain is read.
    pub poll: Duration,
    /// Where job work directories go (`<dir>/<deal id>/`).
    pub work_dir: PathBuf,
    /// Test-only fault: report a wrong result (changes stdout before bundling).
    pub fault_wrong_result: bool,
}

/// Where a signed deal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Signed; waiting for the job creator to create it on chain.
    Signed,
    /// Created on chain: the job is to be run (again, after a restart).
    Running,
    /// Ran; the bundle is on disk with `result_hash`.
    Ran,
    /// The bundle is at the solver.
    Uploaded,
    /// The result hash is on chain; waiting for the verdict or the judge deadline.
    Submitted,
    /// Nothing left to do (`outcome` says how it ended).
    Done,
}

/// One signed deal, as kept in the provider's store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The deal as the solver proposed it.
    pub deal: DealRecord,
    /// The job.
    pub spec: JobSpec,
    /// Where it is.
    pub stage: Stage,
    /// The result hash once run.
    pub result_hash: Option<B256>,
    /// The `submitResult` transaction.
    pub submit_tx: Option<B256>,
    /// How it ended (a deal state name, or why it was dropped).
    pub outcome: Option<String>,
    /// When it was signed, unix seconds.
    pub signed_at: u64,
}

/// A running provider.
pub struct ProviderService {
    cfg: ProviderConfig,
    chain: ChainClient,
    signer: PrivateKeySigner,
    contracts: Contracts,
    solver: SolverClient,
    executor: Arc<dyn Executor>,
    kv: Arc<KvStore>,
    active: Mutex<HashSet<B256>>,
    current_offer: Mutex<Option<(B256, u64)>>,
    deals_domain: alloy::sol_types::Eip712Domain,
}

impl ProviderService {
    /// Builds the service; `signer` must be `chain`'s account.
    pub fn new(
        cfg: ProviderConfig,
        chain: ChainClient,
        signer: PrivateKeySigner,
        contracts: Contracts,
        solver: SolverClient,
        executor: Arc<dyn Executor>,
        kv: Arc<KvStore>,
    ) -> Arc<Self> {
        let deals_domain = crate::chain::deals::domain(chain.network.chain_id, contracts.deals);
        Arc::new(Self {
            cfg,
            chain,
            signer,
            contracts,
            solver,
            executor,
            kv,
            active: Mutex::new(HashSet::new()),
            current_offer: Mutex::new(None),
            deals_domain,
        })
    }

    fn me(&self) -> Address {
        self.chain.from
    }

    /// Runs until `stop` is cancelled: resumes stored deals, posts the offer, follows the
    /// solver's events. On stop, cancels the open offer; deals in flight resume at the
    /// next start.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> eyre::Result<()> {
        let need = self.cfg.collateral * U256::from(self.cfg.slots);
        let deposited = ensure_free_escrow(&self.chain, &self.contracts, need).await?;
        if !deposited.is_zero() {
            tracing::info!(amount = %crate::chain::units::format_amount(deposited), "deposited collateral into escrow");
        }
        let mut tasks = tokio::task::JoinSet::new();
        for job in self.kv.all::<JobRecord>(JOBS)? {
            if job.stage != Stage::Done {
                tracing::info!(deal = %job.deal.id, stage = ?job.stage, "resuming deal");
                self.active.lock().expect("lock").insert(job.deal.id);
                tasks.spawn(self.clone().drive(job, stop.clone()));
            }
        }
        self.cancel_stale_offers().await;
        let mut since = self.kv.cursor(EVENTS_CURSOR)?.unwrap_or(0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        'outer: loop {
            let mut events = tokio::select! {
                _ = stop.cancelled() => break 'outer,
                r = self.solver.events(self.me(), since) => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow the solver's events; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => break 'outer,
                            _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                        }
                    }
                },
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break 'outer,
                    _ = tick.tick() => {
                        if let Err(e) = self.keep_offer_fresh().await {
                            tracing::warn!(error = %e, "cannot post the resource offer; retrying");
                        }
                    }
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                        if let Err(e) = done {
                            tracing::error!(error = %e, "a deal task failed");
                        }
                    }
                    ev = events.next() => match ev {
                        Some(Ok(ev)) => {
                            since = ev.seq;
                            if let EventKind::Deal { deal } = ev.kind {
                                if let Some(job) = self.consider(*deal).await {
                                    tasks.spawn(self.clone().drive(job, stop.clone()));
                                }
                            }
                            self.kv.set_cursor(EVENTS_CURSOR, since)?;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "the solver's event stream failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!("the solver closed the event stream; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        }
        let current = self.current_offer.lock().expect("lock").take();
        if let Some((id, _)) = current {
            if let Err(e) = self.solver.cancel_offer(&self.signer, id, true).await {
                tracing::debug!(offer = %id, error = %e, "could not cancel the offer at shutdown");
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Cancels offers left open by an earlier run: a fresh one is posted with current terms.
    async fn cancel_stale_offers(&self) {
        let Ok(offers) = self.kv.all::<SignedResourceOffer>(OFFERS) else { return };
        for o in offers {
            if o.offer.expiry <= now_secs() {
                continue;
            }
            let id = o.id(&self.solver.domain());
            if let Ok(OfferRecord::Resource(r)) = self.solver.offer(id, true).await {
                if r.status == OfferStatus::Open {
                    let _ = self.solver.cancel_offer(&self.signer, id, true).await;
                }
            }
        }
    }

    /// Posts a new offer when there is none or a quarter of its life is left, then
    /// cancels the old one.
    async fn keep_offer_fresh(&self) -> eyre::Result<()> {
        let now = now_secs();
        let current = *self.current_offer.lock().expect("lock");
        let ttl = self.cfg.offer_ttl_secs.min(self.solver.info.offer_max_ahead_secs).max(8);
        if let Some((_, expiry)) = current {
            if expiry > now + ttl / 4 {
                return Ok(());
            }
        }
        let offer = ResourceOffer {
            provider: self.me(),
            solver: self.solver.info.solver,
            cpu: self.cfg.slot.cpu,
            ramMb: self.cfg.slot.ram_mb,
            gpus: self.cfg.slot.gpus,
            vramMb: self.cfg.slot.vram_mb,
            diskMb: self.cfg.slot.disk_mb,
            slots: self.cfg.slots,
            price: self.cfg.price,
            collateral: self.cfg.collateral,
            mediators: self.cfg.mediators.clone(),
            modules: self.cfg.modules.clone(),
            expiry: now + ttl,
            nonce: U256::from_be_bytes(rand_bytes()),
        };
        let signed = SignedResourceOffer::sign(offer, &self.signer, &self.solver.domain()).await?;
        let id = signed.id(&self.solver.domain());
        self.kv.put(OFFERS, id.as_slice(), &signed)?;
        self.solver.post_resource_offer(&signed).await?;
        tracing::info!(offer = %id, slots = self.cfg.slots, price = %crate::chain::units::format_amount(self.cfg.price), expires_in_secs = ttl, "offer posted");
        *self.current_offer.lock().expect("lock") = Some((id, signed.offer.expiry));
        if let Some((old, _)) = current {
            if let Err(e) = self.solver.cancel_offer(&self.signer, old, true).await {
                tracing::debug!(offer = %old, error = %e, "old offer not cancelled (matched or expired)");
            }
        }
        Ok(())
    }

    /// Decides on a deal event: signs a proposal that passes every check (and returns the
    /// new record to drive); re-signs one already signed whose signature the solver lost.
    async fn consider(&self, deal: DealRecord) -> Option<JobRecord> {
        if deal.deal.provider != self.me() || deal.state != DealState::Proposed {
            return None;
        }
        let id = deal.id;
        if let Ok(Some(job)) = self.kv.get::<JobRecord>(JOBS, id.as_slice()) {
            if job.stage == Stage::Signed {
                let _ = self.solver.sign_deal(&self.signer, id).await;
            }
            return None;
        }
        match self.check_proposal(&deal).await {
            Ok(spec) => {
                let job = JobRecord {
                    deal,
                    spec,
                    stage: Stage::Signed,
                    result_hash: None,
                    submit_tx: None,
                    outcome: None,
                    signed_at: now_secs(),
                };
                if let Err(e) = self.kv.put(JOBS, id.as_slice(), &job) {
                    tracing::error!(deal = %id, error = %e, "cannot record the deal; not signing it");
                    self.active.lock().expect("lock").remove(&id);
                    return None;
                }
                match self.solver.sign_deal(&self.signer, id).await {
                    Ok(_) => {
                        tracing::info!(deal = %id, module = %job.spec.module.name, job_creator = %job.deal.deal.jobCreator, "deal signed: waiting for it on chain");
                    }
                    Err(e) => {
                        tracing::warn!(deal = %id, error = %e, "signing at the solver failed; the deal is watched anyway")
                    }
                }
                Some(job)
            }
            Err(why) => {
                tracing::warn!(deal = %id, reason = %why, "proposed deal refused: not signed");
                None
            }
        }
    }

    /// Checks a proposal against this provider's offer, terms and free capacity; reserves
    /// a slot if it passes.
    async fn check_proposal(&self, deal: &DealRecord) -> Result<JobSpec, String> {
        if !terms::id_matches(&deal.deal, deal.id, &self.deals_domain) {
            return Err("the deal id is not the hash of its terms".into());
        }
        let offer: SignedResourceOffer = self
            .kv
            .get(OFFERS, deal.resource_offer.as_slice())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("resource offer {} is not one of this provider's", deal.resource_offer))?;
        let spec = match self.solver.offer(deal.job_offer, false).await {
            Ok(OfferRecord::Job(j)) => j.signed.spec,
            Ok(_) => return Err("the deal's job offer is not a job offer".into()),
            Err(e) => return Err(format!("cannot fetch the job offer: {e}")),
        };
        terms::check(&deal.deal, &spec, &offer.offer, self.solver.info.solver, &self.cfg.limits)?;
        // The solver frees a slot when it sees the deal end on chain; this provider may
        // see it a moment later. Give a finishing deal a few seconds before refusing.
        let mut waited = 0;
        loop {
            {
                let mut active = self.active.lock().expect("lock");
                if active.len() < self.cfg.slots as usize {
                    active.insert(deal.id);
                    break;
                }
            }
            if waited >= 30 {
                return Err(format!("all {} slot(s) are busy", self.cfg.slots));
            }
            waited += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let waiting =
            self.kv.all::<JobRecord>(JOBS).map(|j| j.iter().filter(|j| j.stage == Stage::Signed).count()).unwrap_or(0);
        let need = self.cfg.collateral * U256::from(waiting + 1);
        if let Err(e) = ensure_free_escrow(&self.chain, &self.contracts, need).await {
            self.active.lock().expect("lock").remove(&deal.id);
            return Err(format!("not enough collateral in escrow: {e}"));
        }
        Ok(spec)
    }

    fn save(&self, job: &JobRecord) {
        if let Err(e) = self.kv.put(JOBS, job.deal.id.as_slice(), job) {
            tracing::error!(deal = %job.deal.id, error = %e, "cannot write the deal record");
        }
    }

    fn finish(&self, job: &mut JobRecord, outcome: &str) {
        job.stage = Stage::Done;
        job.outcome = Some(outcome.to_string());
        self.save(job);
        self.active.lock().expect("lock").remove(&job.deal.id);
        let d = &job.deal.deal;
        match outcome {
            "accepted" | "mediated_honest" | "timed_out_accepted" => tracing::info!(
                deal = %job.deal.id, outcome, earned = %crate::chain::units::format_amount(d.price), "deal done: paid"
            ),
            "mediated_dishonest" | "timed_out_no_result" => tracing::warn!(
                deal = %job.deal.id, outcome, lost = %crate::chain::units::format_amount(d.collateral), "deal done: collateral slashed"
            ),
            _ => tracing::info!(deal = %job.deal.id, outcome, "deal done"),
        }
    }

    /// Moves one deal through its stages until it is done or `stop` is cancelled.
    async fn drive(self: Arc<Self>, mut job: JobRecord, stop: CancellationToken) {
        let id = job.deal.id;
        let mut polls: u64 = 0;
        while job.stage != Stage::Done && !stop.is_cancelled() {
            let next = match job.stage {
                Stage::Signed => self.await_creation(&mut job, polls).await,
                Stage::Running => self.run_job(&mut job).await,
                Stage::Ran => self.upload(&mut job).await,
                Stage::Uploaded => self.submit(&mut job).await,
                Stage::Submitted => self.collect(&mut job).await,
                Stage::Done => break,
            };
            match next {
                Ok(true) => {
                    polls = 0;
                    continue;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(deal = %id, stage = ?job.stage, error = %e, "step failed; retrying"),
            }
            polls += 1;
            let wait = if polls > 1 { self.cfg.poll } else { Duration::ZERO };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
            }
        }
    }

    async fn chain_state(&self, id: B256) -> eyre::Result<DcnDeals::DealInfo> {
        Ok(deal_info(&self.chain, &self.contracts, id).await?)
    }

    /// Signed → Running once the deal is on chain; Done if it never comes.
    async fn await_creation(&self, job: &mut JobRecord, polls: u64) -> eyre::Result<bool> {
        let info = self.chain_state(job.deal.id).await?;
        match info.state {
            0 => {
                // Ask the solver now and then whether the deal lapsed uncreated.
                if polls % 8 == 7 {
                    match self.solver.deal(job.deal.id).await {
                        Ok(d) if d.state == DealState::Expired => {
                            self.finish(job, "expired: never created on chain");
                            return Ok(true);
                        }
                        Ok(d) if d.state == DealState::Proposed && d.provider_signature.is_none() => {
                            let _ = self.solver.sign_deal(&self.signer, job.deal.id).await;
                        }
                        _ => {}
                    }
                }
                Ok(false)
            }
            1 => {
                tracing::info!(deal = %job.deal.id, module = %job.spec.module.name, "deal created on chain: running the job");
                job.stage = Stage::Running;
                self.save(job);
                Ok(true)
            }
            2 | 3 => {
                job.stage = Stage::Submitted;
                self.save(job);
                Ok(true)
            }
            s => {
                self.finish(job, DealState::from_chain(s).map(|s| s.name()).unwrap_or("unknown"));
                Ok(true)
            }
        }
    }

    fn workdir(&self, id: B256) -> PathBuf {
        self.cfg.work_dir.join(id.to_string())
    }

    /// Running → Ran: runs the job (again, from scratch) and writes its bundle.
    async fn run_job(&self, job: &mut JobRecord) -> eyre::Result<bool> {
        let id = job.deal.id;
        let info = self.chain_state(id).await?;
        if info.state != 1 {
            return self.await_creation(job, 0).await;
        }
        if chain_now(&self.chain).await? > info.deadline {
            tracing::warn!(deal = %id, "the result deadline passed before the job ran");
            self.finish(job, "timed_out_no_result");
            return Ok(true);
        }
        let dir = self.workdir(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let outcome = match self.executor.run(&job.spec, &dir).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(deal = %id, error = %e, "the executor could not run the job; retrying until the result deadline");
                tokio::time::sleep(Duration::from_secs(2)).await;
                return Ok(false);
            }
        };
        let mut results = outcome.results();
        if self.cfg.fault_wrong_result {
            tracing::warn!(deal = %id, "fault injection: reporting a wrong result");
            results.stdout.extend_from_slice(b"(a cheating provider was here)\n");
        }
        let hash = bundle::write_bundle(&results, &dir.join("bundle.tar"))?;
        tracing::info!(
            deal = %id,
            exit_code = outcome.exit_code,
            secs = format!("{:.2}", outcome.duration.as_secs_f64()),
            result_hash = %hash,
            "job ran: uploading the result"
        );
        job.result_hash = Some(hash);
        job.stage = Stage::Ran;
        self.save(job);
        Ok(true)
    }

    /// Ran → Uploaded.
    async fn upload(&self, job: &mut JobRecord) -> eyre::Result<bool> {
        let id = job.deal.id;
        let bundle = self.workdir(id).join("bundle.tar");
        if !bundle.exists() {
            job.stage = Stage::Running;
            self.save(job);
            return Ok(true);
        }
        match self.solver.upload_result(&self.signer, id, &bundle).await {
            Ok(_) => {}
            Err(ClientError::Refused { status: 409, message, .. }) if message.contains("already has a result") => {
                let mine = sha256_file(&bundle)?;
                if !message.contains(&mine.to_string()) {
                    eyre::bail!("the solver holds another bundle for this deal: {message}");
                }
            }
            Err(e) => return Err(e.into()),
        }
        job.stage = Stage::Uploaded;
        self.save(job);
        Ok(true)
    }

    /// Uploaded → Submitted: `submitResult`, unless the chain already has it.
    async fn submit(&self, job: &mut JobRecord) -> eyre::Result<bool> {
        let id = job.deal.id;
        let hash = job.result_hash.ok_or_else(|| eyre::eyre!("no result hash recorded"))?;
        let info = self.chain_state(id).await?;
        match info.state {
            1 => {
                if chain_now(&self.chain).await? > info.deadline {
                    self.finish(job, "timed_out_no_result");
                    return Ok(true);
                }
                let deals = DcnDeals::new(self.contracts.deals, &self.chain.provider);
                let receipt = self.chain.send("submitting the result", deals.submitResult(id, hash)).await?;
                job.submit_tx = Some(receipt.transaction_hash);
                tracing::info!(deal = %id, %hash, tx = %receipt.transaction_hash, "result submitted on chain: waiting for the job creator");
            }
            2 | 3 => {}
            s => {
                self.finish(job, DealState::from_chain(s).map(|s| s.name()).unwrap_or("unknown"));
                return Ok(true);
            }
        }
        job.stage = Stage::Submitted;
        self.save(job);
        Ok(true)
    }

    /// Submitted → Done: waits for acceptance or a verdict; calls `timeout` after the
    /// judge deadline.
    async fn collect(&self, job: &mut JobRecord) -> eyre::Result<bool> {
        let id = job.deal.id;
        let info = self.chain_state(id).await?;
        match info.state {
            2 => {
                if chain_now(&self.chain).await? > info.deadline {
                    let deals = DcnDeals::new(self.contracts.deals, &self.chain.provider);
                    self.chain.send("claiming payment after the judge deadline", deals.timeout(id)).await?;
                    self.finish(job, "timed_out_accepted");
                    return Ok(true);
                }
                Ok(false)
            }
            3 => Ok(false),
            s => {
                self.finish(job, DealState::from_chain(s).map(|s| s.name()).unwrap_or("unknown"));
                Ok(true)
            }
        }
    }
}

/// sha256 of a file.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<B256> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(B256::from_slice(&h.finalize()))
}

fn rand_bytes() -> [u8; 32] {
    alloy::primitives::B256::random().0
}
