//! The provider's deal handling with fakes of the chain, the solver and the executor:
//! every timeout it claims or suffers, every restart point, the proposal checks.

use super::deal::{Ending, JobRecord, Stage};
use super::service::{JOBS, OFFERS};
use super::terms::Limits;
use super::{Offering, ProviderConfig, ProviderDeps, ProviderService};
use crate::chain::{DealState, DealsChain};
use crate::kv::KvStore;
use crate::protocol::records::{DealRecord, DealStatus};
use crate::protocol::{ResourceOffer, SignedResourceOffer, SolverApi};
use crate::testing::*;
use crate::types::{JobSpec, Resources};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Rig {
    key: PrivateKeySigner,
    chain: Arc<FakeChain>,
    solver: Arc<FakeSolver>,
    executor: Arc<FakeExecutor>,
    kv: KvStore,
    service: Arc<ProviderService>,
    _dir: tempfile::TempDir,
}

fn cfg() -> ProviderConfig {
    ProviderConfig {
        offer_cpu: 1000,
        offer_ram_mb: 1024,
        offer_gpu: 0,
        slots: 1,
        price: U256::from(10),
        collateral: U256::from(20),
        modules: vec![],
        mediators: vec![MEDIATOR],
        solver: None,
        offer_ttl_secs: 600,
        limits: Limits {
            allow_network: false,
            min_result_margin_secs: 10,
            max_judge_timeout_secs: 3600,
            max_mediation_timeout_secs: 3600,
            max_create_window_secs: 900,
            max_job_timeout_secs: 3600,
            max_spec_bytes: 65_536,
            max_output_bytes: 1 << 30,
            min_mediators: 1,
            min_mediation_fee: U256::ZERO,
        },
        poll: Duration::from_millis(5),
        fault: None,
        resolver: crate::module::resolve::Resolver { override_dir: None, cache_dir: "/nonexistent".into() },
    }
}

impl Rig {
    fn new() -> Self {
        Self::with_kv(KvStore::memory(), PrivateKeySigner::random())
    }

    /// A provider with `kv` and `key`, as after a restart.
    fn with_kv(kv: KvStore, key: PrivateKeySigner) -> Self {
        Self::with_cfg(kv, key, cfg())
    }

    /// A provider running only `modules` (its allow-list).
    fn allowing(modules: &[&str]) -> Self {
        let cfg = ProviderConfig { modules: modules.iter().map(|m| m.to_string()).collect(), ..cfg() };
        Self::with_cfg(KvStore::memory(), PrivateKeySigner::random(), cfg)
    }

    fn with_cfg(kv: KvStore, key: PrivateKeySigner, cfg: ProviderConfig) -> Self {
        let chain = Arc::new(FakeChain::new(key.address()));
        let solver = Arc::new(FakeSolver::new());
        let executor = Arc::new(FakeExecutor::default());
        let dir = tempfile::tempdir().unwrap();
        let deps = ProviderDeps {
            signer: key.clone(),
            chain: chain.clone(),
            solver: solver.clone(),
            executor: executor.clone(),
            kv: kv.clone(),
        };
        let offering =
            Offering { slot: Resources { cpu: 1000, ram_mb: 1024, ..Default::default() }, mediators: vec![MEDIATOR] };
        let service = ProviderService::new(cfg, offering, dir.path().join("jobs"), deps);
        Self { key, chain, solver, executor, kv, service, _dir: dir }
    }

    /// A deal with this provider, created on chain now; its record at `stage`.
    fn created(&self, stage: Stage) -> JobRecord {
        let terms = terms(Address::repeat_byte(0xc0), self.key.address(), &spec("moo"), 1);
        let id = self.chain.create(&terms);
        let deal = record_of(terms, DealStatus::Created);
        assert_eq!(deal.id, id);
        let job = job_at(deal, stage);
        self.kv.put(JOBS, id.as_slice(), &job).unwrap();
        job
    }

    fn record(&self, id: B256) -> JobRecord {
        self.kv.get(JOBS, id.as_slice()).unwrap().unwrap()
    }

    fn drive(&self, job: JobRecord) -> tokio::task::JoinHandle<Result<(), super::ProviderError>> {
        tokio::spawn(self.service.clone().drive(job, CancellationToken::new()))
    }

    async fn until(&self, id: B256, state: DealState) {
        for _ in 0..2000 {
            if self.chain.view(id).state == state {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("deal never reached {state}: {:?}", self.chain.view(id));
    }
}

/// The provider's record of `deal` (for the job `spec("moo")`) at `stage`.
fn job_at(deal: DealRecord, stage: Stage) -> JobRecord {
    JobRecord { stage, ..JobRecord::signed(deal, spec("moo"), 0, Some(crate::testing::fake_image_id("pinned"))) }
}

#[tokio::test]
async fn a_created_deal_is_run_uploaded_submitted_and_paid_once() {
    let rig = Rig::new();
    let job = rig.created(Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!((rig.executor.runs(), rig.solver.uploads()), (1, 1));
    let ran = rig.executor.images.lock().unwrap().clone();
    assert_eq!(ran, [crate::testing::fake_image_id("pinned")], "the image pinned at signing, not the tag");
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Submit(..))), 1);
    let r = rig.record(id);
    assert_eq!((r.stage, r.outcome), (Stage::Done, Some(Ending::Settled(DealState::Accepted))));
    assert!(r.submit_tx.is_some() && r.result_hash == Some(rig.chain.view(id).result_hash));
}

#[tokio::test]
async fn a_restart_after_the_submit_transaction_sends_nothing_again() {
    let rig = Rig::new();
    let mut job = rig.created(Stage::Uploaded);
    let id = job.deal.id;
    job.result_hash = Some(B256::repeat_byte(7));
    // Killed after submitResult was mined, before the record said so.
    rig.chain.put(id, DealState::ResultSubmitted, rig.chain.view(id).deadline + 100, B256::repeat_byte(7));
    let task = rig.drive(job);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(rig.record(id).stage, Stage::Submitted, "caught up with the chain");
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Submit(..))), 0, "no second submitResult");
    assert_eq!((rig.executor.runs(), rig.solver.uploads()), (0, 0), "nothing run or uploaded again");
}

#[tokio::test]
async fn a_restart_after_the_bundle_was_written_and_uploaded_only_submits() {
    let rig = Rig::new();
    let mut job = rig.created(Stage::Ran);
    let id = job.deal.id;
    let dir = rig.service.work_dir.join(id.to_string());
    std::fs::create_dir_all(dir.join("outputs")).unwrap();
    let hash =
        crate::bundle::write_bundle(&fake_results(&job.spec, &dir.join("outputs")), &dir.join("bundle.tar")).unwrap();
    job.result_hash = Some(hash);
    // The upload reached the solver before the restart; the record did not say so.
    rig.solver.put_result(id, std::fs::read(dir.join("bundle.tar")).unwrap());
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(rig.executor.runs(), 0, "the bundle on disk was used");
    assert_eq!(rig.solver.uploads(), 0, "the solver's copy was recognised as this provider's");
    assert_eq!(rig.chain.view(id).result_hash, hash);
}

#[tokio::test]
async fn the_provider_claims_its_payment_after_the_judge_deadline() {
    let rig = Rig::new();
    let job = rig.created(Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.advance(101);
    task.await.unwrap().unwrap();
    assert_eq!(rig.chain.count(|t| *t == Tx::Timeout(id)), 1);
    assert_eq!(rig.record(id).outcome, Some(Ending::Settled(DealState::TimedOutAccepted)));
}

#[tokio::test]
async fn a_challenge_with_no_verdict_gives_the_collateral_back() {
    let rig = Rig::new();
    let job = rig.created(Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.challenge(&rig.chain.dref(id)).await.unwrap();
    rig.chain.advance(101);
    task.await.unwrap().unwrap();
    assert_eq!(rig.record(id).outcome, Some(Ending::Settled(DealState::TimedOutNoVerdict)));
}

#[tokio::test]
async fn a_missed_result_deadline_is_suffered_without_a_transaction() {
    let rig = Rig::new();
    let job = rig.created(Stage::Running);
    let id = job.deal.id;
    rig.chain.advance(101);
    rig.drive(job).await.unwrap().unwrap();
    assert_eq!(rig.record(id).outcome, Some(Ending::MissedDeadline));
    assert!(rig.chain.txs().is_empty());
    assert_eq!(rig.executor.runs(), 0, "no point running a job nobody can be paid for");
}

#[tokio::test]
async fn an_executor_failure_is_retried() {
    let rig = Rig::new();
    rig.executor.fail(1);
    let job = rig.created(Stage::Running);
    let id = job.deal.id;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(rig.executor.runs(), 1);
}

#[tokio::test]
async fn a_deal_never_created_is_watched_until_its_creation_deadline() {
    let rig = Rig::new();
    let terms = terms(Address::repeat_byte(0xc0), rig.key.address(), &spec("moo"), 2);
    let deadline = terms.createDeadline;
    let mut deal = record_of(terms, DealStatus::Expired);
    deal.provider_signature = Some(Default::default());
    rig.solver.put_deal(deal.clone());
    let job = job_at(deal, Stage::Signed);
    let id = job.deal.id;
    // The solver gave up on it, but the job creator may still create it until the deadline.
    let task = rig.drive(job);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "still watched before the creation deadline");
    rig.chain.set_now(deadline + 1);
    task.await.unwrap().unwrap();
    assert_eq!(rig.record(id).outcome, Some(Ending::NeverCreated));
}

#[tokio::test]
async fn a_store_failure_stops_the_deal_task() {
    // A record that cannot be written is fatal: the provider must not act without it.
    struct Broken;
    impl crate::kv::KvBackend for Broken {
        fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, crate::kv::KvError> {
            Ok(None)
        }
        fn put(&self, _: &[u8], _: &[u8]) -> Result<(), crate::kv::KvError> {
            Err(crate::kv::KvError::Db { path: "x".into(), message: "disk full".into() })
        }
        fn scan(&self, _: &[u8]) -> Result<crate::kv::Entries, crate::kv::KvError> {
            Ok(vec![])
        }
    }
    let healthy = Rig::new();
    let job = healthy.created(Stage::Signed);
    let rig = Rig::with_kv(KvStore::with_backend(Arc::new(Broken)), healthy.key.clone());
    rig.chain.create(&job.deal.deal);
    let err = rig.drive(job).await.unwrap().unwrap_err();
    assert!(err.is_fatal(), "{err}");
}

async fn posted_offer(rig: &Rig) -> B256 {
    let offer = ResourceOffer {
        provider: rig.key.address(),
        solver: SOLVER,
        cpu: 1000,
        ramMb: 1024,
        gpus: 0,
        vramMb: 0,
        diskMb: 1024,
        slots: 1,
        price: U256::from(10),
        collateral: U256::from(20),
        mediators: vec![MEDIATOR],
        modules: vec![],
        maxTimeoutSecs: 3600,
        maxSpecBytes: 65_536,
        maxOutputBytes: 1 << 30,
        expiry: u64::MAX,
        nonce: U256::ZERO,
    };
    let signed = SignedResourceOffer::sign(offer, &rig.key, &rig.solver.info().domain()).await.unwrap();
    let id = signed.id(&rig.solver.info().domain());
    rig.kv.put(OFFERS, id.as_slice(), &signed).unwrap();
    id
}

fn proposal(rig: &Rig, offer: B256, n: u8) -> DealRecord {
    proposal_for(rig, offer, n, spec("moo"))
}

/// A proposal on `offer` for `job`.
fn proposal_for(rig: &Rig, offer: B256, n: u8, job: JobSpec) -> DealRecord {
    let creator = PrivateKeySigner::random();
    let mut deal = record_of(terms(creator.address(), rig.key.address(), &job, n), DealStatus::Proposed);
    deal.resource_offer = offer;
    deal.job_offer = B256::repeat_byte(n);
    rig.solver.put_job_offer(deal.job_offer, job, &creator);
    rig.solver.put_deal(deal.clone());
    deal
}

#[tokio::test]
async fn a_job_this_machine_cannot_run_is_refused_before_signing() {
    let rig = Rig::new();
    let offer = posted_offer(&rig).await;
    // What Docker would refuse.
    for (n, change) in [
        (1u8, &(|s: &mut JobSpec| s.argv.clear()) as &dyn Fn(&mut JobSpec)),
        (2, &|s| s.resources.ram_mb = 1),
        (3, &|s| s.resources.cpu = 5),
        (4, &|s| s.image = "busybox".into()),
    ] {
        let mut job = spec("moo");
        change(&mut job);
        assert!(rig.service.consider(proposal_for(&rig, offer, n, job)).await.unwrap().is_none(), "case {n}");
    }
    // An image that is not here and cannot be pulled; the solver is told why.
    rig.executor.no_image.store(true, std::sync::atomic::Ordering::SeqCst);
    let gone = proposal(&rig, offer, 5);
    assert!(rig.service.consider(gone.clone()).await.unwrap().is_none());
    let told = rig.solver.deal(gone.id).await.unwrap().refusal.unwrap();
    assert!(told.contains("cannot run the job") && told.contains("not present"), "{told}");
    assert_eq!(rig.solver.signatures(), 0);
    assert!(rig.kv.all::<JobRecord>(JOBS).unwrap().is_empty(), "nothing recorded, no slot held");
}

#[tokio::test]
async fn with_an_allow_list_only_the_modules_own_job_is_signed() {
    let rig = Rig::allowing(&["cowsay@1.0.0"]);
    let offer = posted_offer(&rig).await;
    let cowsay = crate::module::resolve::Resolver { override_dir: None, cache_dir: "/nonexistent".into() }
        .resolve_named("cowsay")
        .unwrap();
    let honest = cowsay.job_spec(&crate::module::parse_inputs(&["Message=moo"]).unwrap()).unwrap();
    // Under the allowed name, another image or command: refused.
    let swapped = JobSpec { image: "dcn.local/busybox:1.35".into(), ..honest.clone() };
    assert!(rig.service.consider(proposal_for(&rig, offer, 1, swapped)).await.unwrap().is_none());
    let mut shell = honest.clone();
    shell.argv = vec!["/bin/sh".into(), "-c".into()];
    assert!(rig.service.consider(proposal_for(&rig, offer, 2, shell)).await.unwrap().is_none());
    assert_eq!(rig.solver.signatures(), 0);
    assert!(
        rig.service.consider(proposal_for(&rig, offer, 3, honest)).await.unwrap().is_some(),
        "the real one is signed"
    );
}

#[tokio::test]
async fn no_deal_is_signed_on_an_offer_the_provider_replaced() {
    let rig = Rig::new();
    let old = posted_offer(&rig).await;
    rig.kv.put(super::offers::CANCELLED, old.as_slice(), &1u64).unwrap();
    assert!(rig.service.consider(proposal(&rig, old, 1)).await.unwrap().is_none());
    assert_eq!(rig.solver.signatures(), 0);
}

#[tokio::test]
async fn a_good_proposal_is_recorded_then_signed() {
    let rig = Rig::new();
    let offer = posted_offer(&rig).await;
    let deal = proposal(&rig, offer, 1);
    let job = rig.service.consider(deal.clone()).await.unwrap().expect("signed");
    assert_eq!(job.stage, Stage::Signed);
    assert_eq!(rig.record(deal.id).stage, Stage::Signed, "recorded");
    let image = crate::testing::fake_image_id(&job.spec.image);
    assert_eq!(rig.record(deal.id).image_id, Some(image), "with the image as inspected at signing");
    assert_eq!(rig.solver.signatures(), 1);
    // The slot is taken: a second proposal is refused.
    let second = proposal(&rig, offer, 2);
    assert!(rig.service.consider(second).await.unwrap().is_none());
    assert_eq!(rig.solver.signatures(), 1);
}

/// A proposal that finds its slot held by a deal that is finishing waits for it and takes
/// it as soon as the deal lets it go (the solver freed it a moment before this provider
/// saw the deal end).
#[tokio::test]
async fn a_proposal_takes_the_slot_a_finishing_deal_lets_go() {
    let rig = Rig::new();
    let offer = posted_offer(&rig).await;
    let first = rig.service.consider(proposal(&rig, offer, 1)).await.unwrap().expect("signed");
    let service = rig.service.clone();
    let second = proposal(&rig, offer, 2);
    let waiting = tokio::spawn(async move { service.consider(second).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "waits for the slot instead of refusing");
    rig.service.release(&first.deal.id);
    let job = tokio::time::timeout(Duration::from_secs(2), waiting).await.expect("the freed slot ends the wait");
    assert!(job.unwrap().unwrap().is_some(), "signed once the slot was free");
    assert_eq!(rig.solver.signatures(), 2);
}

#[tokio::test]
async fn proposals_that_lie_are_not_signed() {
    let rig = Rig::new();
    let offer = posted_offer(&rig).await;
    let mut forged = proposal(&rig, offer, 1);
    forged.deal.price = U256::from(1);
    assert!(rig.service.consider(forged).await.unwrap().is_none(), "the id no longer hashes the terms");
    let mut elsewhere = proposal(&rig, offer, 2);
    elsewhere.resource_offer = B256::repeat_byte(0x99);
    assert!(rig.service.consider(elsewhere).await.unwrap().is_none(), "not on one of its offers");
    let other_job = proposal(&rig, offer, 3);
    rig.solver.put_job_offer(other_job.job_offer, spec("oink"), &PrivateKeySigner::random());
    assert!(rig.service.consider(other_job).await.unwrap().is_none(), "the spec does not hash to the job hash");
    assert_eq!(rig.solver.signatures(), 0);
    assert!(rig.kv.all::<JobRecord>(JOBS).unwrap().is_empty());
}

#[tokio::test]
async fn a_solver_that_forgot_the_deal_does_not_stop_the_watch() {
    let rig = Rig::new();
    let terms = terms(Address::repeat_byte(0xc0), rig.key.address(), &spec("moo"), 3);
    let deal = record_of(terms.clone(), DealStatus::Signed);
    let job = job_at(deal, Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    // Long enough for the provider to ask the solver, which answers 404.
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.chain.create(&terms);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(rig.record(id).outcome, Some(Ending::Settled(DealState::Accepted)));
}

/// The bundle the solver holds for `id`, extracted.
fn delivered(rig: &Rig, id: B256) -> crate::bundle::Results {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("b.tar");
    std::fs::write(&tar, rig.solver.result(id).expect("a bundle at the solver")).unwrap();
    let r = crate::bundle::extract(&tar, &dir.path().join("x"), crate::bundle::DEFAULT_MAX_BUNDLE_BYTES, None)
        .unwrap()
        .results;
    crate::bundle::Results { outputs_dir: Default::default(), ..r }
}

#[tokio::test]
async fn the_hash_goes_on_chain_while_the_solver_refuses_the_upload_which_follows() {
    let rig = Rig::new();
    rig.solver.refuse_uploads(2);
    let job = rig.created(Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    for _ in 0..1000 {
        if rig.record(id).uploaded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rig.record(id).uploaded, "uploaded after the refusals, with backoff");
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!((rig.chain.count(|t| matches!(t, Tx::Submit(..))), rig.solver.uploads()), (1, 1));
    assert!(!rig.service.work_dir.join(id.to_string()).exists(), "work directory removed once final");
}

#[tokio::test]
async fn a_job_this_machine_cannot_run_is_delivered_as_an_error_bundle() {
    let rig = Rig::new();
    rig.executor.no_image.store(true, std::sync::atomic::Ordering::SeqCst);
    let job = rig.created(Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    let r = delivered(&rig, id);
    assert_eq!(r.exit_code, crate::bundle::ERROR_BUNDLE_EXIT);
    let stderr = String::from_utf8(r.stderr).unwrap();
    assert!(stderr.contains("could not run the job") && stderr.contains("not present"), "{stderr}");
}

#[tokio::test]
async fn a_passing_executor_failure_is_retried_then_delivered_before_the_deadline() {
    let rig = Rig::new();
    rig.executor.fail(u32::MAX);
    let job = rig.created(Stage::Signed);
    let id = job.deal.id;
    let task = rig.drive(job);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rig.chain.view(id).state, DealState::Created, "retried while time is left");
    // Ten seconds before the result deadline: an error bundle rather than nothing.
    let deadline = rig.chain.view(id).deadline;
    rig.chain.set_now(deadline - 10);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    let r = delivered(&rig, id);
    assert_eq!(r.exit_code, crate::bundle::ERROR_BUNDLE_EXIT);
    assert!(String::from_utf8(r.stderr).unwrap().contains("Docker daemon"));
}

#[tokio::test]
async fn an_output_over_the_jobs_limit_is_delivered_as_an_error_bundle() {
    let rig = Rig::new();
    let mut job = rig.created(Stage::Running);
    let id = job.deal.id;
    // The fake job prints its argv: two MiB, over the 1 MiB the job declares.
    job.spec.argv[1] = "x".repeat(2 << 20);
    job.spec.resources.disk_mb = 1;
    let task = rig.drive(job);
    rig.until(id, DealState::ResultSubmitted).await;
    rig.chain.accept_result(&rig.chain.dref(id)).await.unwrap();
    task.await.unwrap().unwrap();
    let r = delivered(&rig, id);
    assert_eq!(r.exit_code, crate::bundle::ERROR_BUNDLE_EXIT);
    let stderr = String::from_utf8(r.stderr).unwrap();
    assert!(stderr.contains("over its limit of 1048576 bytes"), "{stderr}");
}
