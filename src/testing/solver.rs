//! [`FakeSolver`] (the solver API in maps) and [`FakeExecutor`] ("runs" a job by printing
//! its argv).

#![allow(clippy::unwrap_used, missing_docs)]

use super::{CHAIN_ID, DEALS, MEDIATOR, SOLVER};
use crate::bundle::Results;
use crate::executor::{BoxFuture, Executor, ExecutorError, Prepared, RunOutcome, Termination};
use crate::protocol::client::{EventStream, SolverInfo};
use crate::protocol::records::*;
use crate::protocol::{ClientError, OfferKind, SignedJobOffer, SignedResourceOffer, SolverApi};
use crate::types::{JobSpec, Resources};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct SolverState {
    offers: HashMap<B256, OfferRecord>,
    deals: HashMap<B256, DealRecord>,
    results: HashMap<B256, Vec<u8>>,
    signatures: u32,
    uploads: u32,
    /// Uploads still to be refused (503) before one is taken.
    refuse_uploads: u32,
    /// Failure reports, in order: the deal and whether its job creator still waits.
    reports: Vec<(B256, bool)>,
    /// The fault a report is confirmed with (`None`: refused as `no_provider_fault`).
    confirms: Option<crate::chain::ProviderFault>,
    /// The deal a confirmed report with `rematch` hands the job offer to next.
    rematch_with: Option<DealRecord>,
    /// Event streams cannot be opened: clients poll.
    events_down: bool,
}

/// A solver in maps.
pub struct FakeSolver {
    info: SolverInfo,
    state: Mutex<SolverState>,
    events: tokio::sync::broadcast::Sender<Event>,
}

impl Default for FakeSolver {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSolver {
    pub fn new() -> Self {
        let info = SolverInfo {
            solver: SOLVER,
            chain_id: CHAIN_ID,
            deals_contract: DEALS,
            offer_max_ahead_secs: 3600,
            max_result_bytes: Some(64 << 20),
            genesis_hash: None,
        };
        Self { info, state: Mutex::default(), events: tokio::sync::broadcast::channel(64).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SolverState> {
        self.state.lock().unwrap()
    }

    pub fn put_deal(&self, deal: DealRecord) {
        self.lock().deals.insert(deal.id, deal);
    }

    /// Puts a job offer for `spec` under `id`.
    pub fn put_job_offer(&self, id: B256, spec: JobSpec, creator: &PrivateKeySigner) {
        let offer = crate::protocol::JobOffer {
            jobCreator: creator.address(),
            solver: SOLVER,
            jobHash: spec.content_hash(),
            maxPrice: U256::from(100),
            mediationFee: U256::from(1),
            auditFee: U256::from(1),
            auditPpm: 1_000_000,
            mediators: vec![MEDIATOR],
            resultTimeout: 100,
            judgeTimeout: 100,
            mediationTimeout: 100,
            expiry: u64::MAX,
            nonce: U256::ZERO,
        };
        // Signed as the job creator signs it: over its EIP-712 digest in this solver's domain.
        let digest = {
            use alloy::sol_types::SolStruct;
            offer.eip712_signing_hash(&self.info.domain())
        };
        let signature = {
            use alloy::signers::SignerSync;
            Bytes::from(creator.sign_hash_sync(&digest).unwrap().as_bytes().to_vec())
        };
        let signed = SignedJobOffer { offer, spec, signature };
        let record = JobOfferRecord {
            id,
            seq: 1,
            received_at: 0,
            status: OfferStatus::Matched,
            deal: None,
            excluded: vec![],
            signed,
        };
        self.lock().offers.insert(id, OfferRecord::Job(record));
    }

    /// The job offers posted, in no order.
    pub fn job_offers(&self) -> Vec<JobOfferRecord> {
        let s = self.lock();
        s.offers.values().filter_map(|o| if let OfferRecord::Job(j) = o { Some(j.clone()) } else { None }).collect()
    }

    /// Matches job offer `offer` into `deal`, as the solver's matcher would.
    pub fn propose(&self, offer: B256, deal: DealRecord) {
        let mut s = self.lock();
        if let Some(OfferRecord::Job(j)) = s.offers.get_mut(&offer) {
            j.status = OfferStatus::Matched;
            j.deal = Some(deal.id);
        }
        s.deals.insert(deal.id, deal);
    }

    /// Failure reports confirm `fault` (`None`: refused), and one with `rematch` hands the
    /// job offer to `next`.
    pub fn confirm_reports(&self, fault: Option<crate::chain::ProviderFault>, next: Option<DealRecord>) {
        let mut s = self.lock();
        s.confirms = fault;
        s.rematch_with = next;
    }

    /// The failure reports received: the deal and whether its job creator still waits.
    pub fn reports(&self) -> Vec<(B256, bool)> {
        self.lock().reports.clone()
    }

    /// Event streams cannot be opened from now on: clients poll instead.
    pub fn events_down(&self) {
        self.lock().events_down = true;
    }

    pub fn put_result(&self, id: B256, bundle: Vec<u8>) {
        self.lock().results.insert(id, bundle);
    }

    pub fn signatures(&self) -> u32 {
        self.lock().signatures
    }

    pub fn uploads(&self) -> u32 {
        self.lock().uploads
    }

    /// The next `n` uploads are refused as by an overloaded solver.
    pub fn refuse_uploads(&self, n: u32) {
        self.lock().refuse_uploads = n;
    }

    /// The bundle held for deal `id`, if any.
    pub fn result(&self, id: B256) -> Option<Vec<u8>> {
        self.lock().results.get(&id).cloned()
    }

    fn up(&self) -> Result<std::sync::MutexGuard<'_, SolverState>, ClientError> {
        Ok(self.lock())
    }
}

fn not_found(what: &str) -> ClientError {
    ClientError::Refused { status: 404, code: "not_found".into(), message: format!("no {what}"), retry_after: None }
}

#[async_trait]
impl SolverApi for FakeSolver {
    fn info(&self) -> &SolverInfo {
        &self.info
    }

    fn url(&self) -> &str {
        "http://fake-solver"
    }

    async fn post_resource_offer(&self, offer: &SignedResourceOffer) -> Result<ResourceOfferRecord, ClientError> {
        let id = offer.id(&self.info.domain());
        let record =
            ResourceOfferRecord { id, seq: 1, received_at: 0, status: OfferStatus::Open, signed: offer.clone() };
        self.up()?.offers.insert(id, OfferRecord::Resource(record.clone()));
        Ok(record)
    }

    async fn post_job_offer(&self, offer: &SignedJobOffer) -> Result<JobOfferRecord, ClientError> {
        let id = offer.id(&self.info.domain());
        let record = JobOfferRecord {
            id,
            seq: 1,
            received_at: 0,
            status: OfferStatus::Open,
            deal: None,
            excluded: vec![],
            signed: offer.clone(),
        };
        self.up()?.offers.insert(id, OfferRecord::Job(record.clone()));
        Ok(record)
    }

    async fn offer(&self, id: B256, _kind: OfferKind) -> Result<OfferRecord, ClientError> {
        self.up()?.offers.get(&id).cloned().ok_or_else(|| not_found("offer"))
    }

    async fn cancel_offer(&self, _s: &PrivateKeySigner, id: B256, _k: OfferKind) -> Result<OfferRecord, ClientError> {
        self.up()?.offers.get(&id).cloned().ok_or_else(|| not_found("offer"))
    }

    async fn deal(&self, id: B256) -> Result<DealRecord, ClientError> {
        self.up()?.deals.get(&id).cloned().ok_or_else(|| not_found("deal"))
    }

    async fn sign_deal(&self, signer: &PrivateKeySigner, id: B256) -> Result<DealRecord, ClientError> {
        let signature = crate::protocol::sign_digest(signer, &id).await?;
        let mut s = self.up()?;
        s.signatures += 1;
        let deal = s.deals.get_mut(&id).ok_or_else(|| not_found("deal"))?;
        deal.state = DealStatus::Signed;
        deal.provider_signature = Some(signature);
        Ok(deal.clone())
    }

    async fn refuse_deal(&self, _s: &PrivateKeySigner, id: B256, reason: &str) -> Result<DealRecord, ClientError> {
        let mut s = self.up()?;
        let deal = s.deals.get_mut(&id).ok_or_else(|| not_found("deal"))?;
        deal.state = DealStatus::Expired;
        deal.refusal = Some(reason.to_string());
        Ok(deal.clone())
    }

    async fn report_failure(&self, _k: &PrivateKeySigner, id: B256, rematch: bool) -> Result<DealRecord, ClientError> {
        let mut s = self.up()?;
        s.reports.push((id, rematch));
        let Some(fault) = s.confirms else {
            return Err(ClientError::Refused {
                status: 409,
                code: "no_provider_fault".into(),
                message: "fake: not confirmed".into(),
                retry_after: None,
            });
        };
        let deal = s.deals.get_mut(&id).ok_or_else(|| not_found("deal"))?;
        deal.state = DealStatus::Expired;
        deal.fault = Some(fault);
        let (ended, offer) = (deal.clone(), deal.job_offer);
        if let Some(next) = s.rematch_with.take().filter(|_| rematch) {
            if let Some(OfferRecord::Job(j)) = s.offers.get_mut(&offer) {
                j.deal = Some(next.id);
            }
            s.deals.insert(next.id, next);
        }
        Ok(ended)
    }

    async fn upload_result(&self, _s: &PrivateKeySigner, id: B256, bundle: &Path) -> Result<ResultRecord, ClientError> {
        let bytes = std::fs::read(bundle).map_err(|source| ClientError::Io { what: "reading".into(), source })?;
        let mut s = self.up()?;
        if s.refuse_uploads > 0 {
            s.refuse_uploads -= 1;
            return Err(ClientError::Refused {
                status: 503,
                code: "unavailable".into(),
                message: "fake: busy".into(),
                retry_after: None,
            });
        }
        if let Some(existing) = s.results.get(&id) {
            return Err(ClientError::ResultExists { sha256: sha256(existing) });
        }
        s.uploads += 1;
        let record = ResultRecord { deal: id, sha256: sha256(&bytes), size: bytes.len() as u64, uploaded_at: 0 };
        s.results.insert(id, bytes);
        Ok(record)
    }

    async fn download_result(&self, _s: &PrivateKeySigner, id: B256, dest: &Path) -> Result<B256, ClientError> {
        let bytes = self.up()?.results.get(&id).cloned().ok_or_else(|| not_found("result"))?;
        std::fs::write(dest, &bytes)
            .map_err(|source| ClientError::Io { what: format!("writing {}", dest.display()), source })?;
        Ok(sha256(&bytes))
    }

    async fn events(&self, _address: Address, since: u64) -> Result<EventStream, ClientError> {
        if self.lock().events_down {
            return Err(ClientError::Unreachable { url: "fake".into(), reason: "events down".into() });
        }
        let rx = self.events.subscribe();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((Ok(e), rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        });
        Ok(EventStream::new(stream, since))
    }
}

fn sha256(bytes: &[u8]) -> B256 {
    use sha2::{Digest, Sha256};
    B256::from_slice(&Sha256::digest(bytes))
}

/// An executor that "runs" a job by printing its argv, and counts its runs.
#[derive(Default)]
pub struct FakeExecutor {
    runs: AtomicU32,
    failures_left: AtomicU32,
    /// Each run prints its run number too: a job that is not reproducible.
    pub random: std::sync::atomic::AtomicBool,
    /// Every run fails as if the image were not on this machine.
    pub no_image: std::sync::atomic::AtomicBool,
    /// The image of every run, in order.
    pub images: Mutex<Vec<String>>,
}

/// The image ID a [`FakeExecutor`] reports for `image`.
pub fn fake_image_id(image: &str) -> String {
    use sha2::Digest;
    format!("sha256:{}", alloy::hex::encode(sha2::Sha256::digest(image.as_bytes())))
}

impl FakeExecutor {
    pub fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }

    /// The next `n` runs fail as if Docker were down.
    pub fn fail(&self, n: u32) {
        self.failures_left.store(n, Ordering::SeqCst);
    }
}

/// The result a [`FakeExecutor`] gives for `spec`, as bundled.
pub fn fake_results(spec: &JobSpec, outputs: &Path) -> Results {
    Results {
        exit_code: 0,
        stdout: format!("{}\n", spec.argv.join(" ")).into_bytes(),
        stderr: vec![],
        outputs_dir: outputs.to_path_buf(),
    }
}

impl Executor for FakeExecutor {
    fn run<'a>(&'a self, job: &'a JobSpec, workdir: &'a Path) -> BoxFuture<'a, Result<RunOutcome, ExecutorError>> {
        Box::pin(async move {
            if self.failures_left.load(Ordering::SeqCst) > 0 {
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                return Err(ExecutorError::DockerUnavailable("fake: down".into()));
            }
            if self.no_image.load(Ordering::SeqCst) {
                return Err(ExecutorError::ImageUnavailable { image: job.image.clone(), reason: "fake: gone".into() });
            }
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            self.images.lock().unwrap_or_else(|p| p.into_inner()).push(job.image.clone());
            let outputs = workdir.join("outputs");
            std::fs::create_dir_all(&outputs).map_err(|source| ExecutorError::Io { what: "outputs".into(), source })?;
            let mut r = fake_results(job, &outputs);
            if self.random.load(Ordering::SeqCst) {
                r.stdout.extend(format!("run {n}\n").into_bytes());
            }
            Ok(RunOutcome {
                exit_code: r.exit_code,
                termination: Termination::Exited,
                stdout: r.stdout,
                stderr: r.stderr,
                outputs_dir: outputs,
                over_limit: None,
                duration: Duration::from_millis(1),
                gpus: vec![],
            })
        })
    }

    fn prepare<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<Prepared, ExecutorError>> {
        Box::pin(async move {
            crate::executor::check_spec(job, &crate::executor::Policy::default())?;
            if self.no_image.load(Ordering::SeqCst) {
                return Err(ExecutorError::ImageUnavailable { image: job.image.clone(), reason: "fake: gone".into() });
            }
            Ok(Prepared { image_id: fake_image_id(&job.image) })
        })
    }

    fn capacity(&self) -> Resources {
        Resources::default()
    }
}
