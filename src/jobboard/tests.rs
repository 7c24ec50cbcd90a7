//! The job board's handling of a request with a fake chain and a fake buyer: buy once and
//! deliver, never buy twice after a restart, buy again at once when the provider spoilt its
//! signed deal, move an expired request to failed, and back off after a failed purchase
//! instead of looping.

use super::config::Worth;
use super::request::{BoardJob, BoardStage, Failure};
use super::service::{BuyError, Buyer, JobBoardDeps, JobBoardService, Settlement};
use super::JobBoardConfig;
use crate::chain::{DealState, RequestStatus, RequestView};
use crate::kv::KvStore;
use crate::module::resolve::Resolver;
use crate::protocol::records::{CreatedDeal, DealRecord};
use crate::testing::*;
use crate::types::JobSpec;
use alloy::primitives::{Address, B256, U256};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct FakeBuyer {
    max_prices: std::sync::Mutex<Vec<U256>>,
    buys: AtomicU32,
    creates: AtomicU32,
    settles: AtomicU32,
    failing: bool,
    /// Creates that find the deal spoilt by its provider (THREATS N3) before one works.
    spoilt: AtomicU32,
}

#[async_trait]
impl Buyer for FakeBuyer {
    async fn buy(&self, _spec: &JobSpec, max_price: U256) -> Result<DealRecord, BuyError> {
        self.max_prices.lock().unwrap().push(max_price);
        self.buys.fetch_add(1, Ordering::SeqCst);
        if self.failing {
            return Err(BuyError("no provider took the job".into()));
        }
        // Signed just now: its creation deadline is far ahead of the chain's clock.
        let mut deal = created_deal(1).deal;
        deal.deal.createDeadline = 1_000_000;
        Ok(deal)
    }

    async fn create(&self, deal: &DealRecord, spec: &JobSpec) -> Result<Option<CreatedDeal>, BuyError> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        if self.spoilt.load(Ordering::SeqCst) > 0 {
            self.spoilt.fetch_sub(1, Ordering::SeqCst);
            return Ok(None);
        }
        Ok(Some(CreatedDeal {
            deal: deal.clone(),
            spec: spec.clone(),
            create_tx: B256::repeat_byte(7),
            created_block: 0,
        }))
    }

    async fn settle(&self, _deal: &CreatedDeal) -> Result<Settlement, BuyError> {
        self.settles.fetch_add(1, Ordering::SeqCst);
        Ok(Settlement { state: DealState::Accepted, result_hash: B256::repeat_byte(0x42) })
    }
}

struct Rig {
    chain: Arc<FakeChain>,
    buyer: Arc<FakeBuyer>,
    service: Arc<JobBoardService>,
}

/// The job hash the built-in cowsay module makes of `message`: what a request names.
fn cowsay_job_hash(message: &str) -> alloy::primitives::B256 {
    let resolver = Resolver { override_dir: None, cache_dir: std::env::temp_dir() };
    let inputs = crate::module::parse_inputs(&[format!("Message={message}")]).unwrap();
    resolver.resolve("cowsay").unwrap().job_spec(&inputs).unwrap().content_hash()
}

impl Rig {
    fn new(buyer: FakeBuyer) -> Self {
        let chain = Arc::new(FakeChain::new(Address::repeat_byte(0x0b)));
        let buyer = Arc::new(buyer);
        let cfg = JobBoardConfig {
            poll: Duration::from_millis(5),
            solver: None,
            resolver: Resolver { override_dir: None, cache_dir: std::env::temp_dir() },
            worth: Worth { min_payment: U256::from(1), result_margin_secs: 120, fees: U256::ZERO },
            fault: None,
        };
        let deps = JobBoardDeps {
            board: chain.clone(),
            chain: chain.clone(),
            logs: chain.clone(),
            board_contract: Address::repeat_byte(0xb0),
            buyer: buyer.clone(),
            kv: KvStore::memory(),
        };
        Self { chain, buyer, service: JobBoardService::new(cfg, deps) }
    }

    fn request(&self, id: u64, deadline: u64) -> U256 {
        self.request_paying(id, deadline, U256::from(1))
    }

    fn request_paying(&self, id: u64, deadline: u64, payment: U256) -> U256 {
        let id = U256::from(id);
        let view = RequestView {
            status: RequestStatus::Open,
            requester: Address::repeat_byte(1),
            operator: crate::chain::DealsChain::account(self.chain.as_ref()),
            module: "cowsay".into(),
            inputs: vec!["Message=moo".into()],
            job_hash: cowsay_job_hash("moo"),
            payment,
            deadline,
            deal: alloy::primitives::B256::ZERO,
        };
        self.chain.put_request(id, view);
        id
    }

    async fn handle(&self, job: BoardJob) {
        self.service.clone().handle(job, CancellationToken::new()).await.unwrap();
    }

    fn stored(&self, id: U256) -> BoardJob {
        self.service.stored(id).unwrap().unwrap()
    }
}

#[tokio::test]
async fn a_request_is_bought_once_and_delivered() {
    let rig = Rig::new(FakeBuyer::default());
    let id = rig.request(1, 5_000);
    rig.handle(BoardJob::new(id)).await;
    let counts = |b: &FakeBuyer| [&b.buys, &b.creates, &b.settles].map(|n| n.load(Ordering::SeqCst));
    assert_eq!(counts(&rig.buyer), [1, 1, 1]);
    let deal = created_deal(1).deal.id;
    assert_eq!(
        rig.chain.txs(),
        [Tx::Claim(id, deal), Tx::Deliver(id, deal)],
        "claimed with its deal as soon as it was bought (no refund while it runs), then delivered"
    );
    assert!(matches!(rig.stored(id).stage, BoardStage::Delivered { .. }));
    assert_eq!(*rig.buyer.max_prices.lock().unwrap(), [U256::from(1)], "a deal costs at most what the request pays");
}

#[tokio::test]
async fn a_request_that_would_drain_the_operator_is_never_bought() {
    // THREATS K5: a request paying nothing, or due in a second, made the operator buy a
    // deal it could never be paid for (the requester then took a refund).
    let rig = Rig::new(FakeBuyer::default());
    let free = rig.request_paying(1, 5_000, U256::ZERO);
    rig.handle(BoardJob::new(free)).await;
    assert!(matches!(rig.stored(free).stage, BoardStage::Failed { reason: Failure::Underpaid { .. } }));
    // The chain's clock is at 1,000: cowsay's 60 s timeout plus the 120 s margin need 180 s.
    let hasty = rig.request_paying(2, 1_001, U256::from(1_000));
    rig.handle(BoardJob::new(hasty)).await;
    assert_eq!(rig.stored(hasty).stage, BoardStage::Failed { reason: Failure::TooLittleTime { left: 1, needed: 180 } });
    assert_eq!(rig.buyer.buys.load(Ordering::SeqCst), 0, "no deal bought");
    assert!(rig.chain.txs().is_empty(), "no transaction sent");
}

#[tokio::test]
async fn a_restart_with_a_deal_on_record_follows_it_without_buying_again() {
    let rig = Rig::new(FakeBuyer::default());
    let id = rig.request(1, 5_000);
    let job = BoardJob { stage: BoardStage::Created { created: Box::new(created_deal(1)) }, ..BoardJob::new(id) };
    rig.handle(job).await;
    assert_eq!(rig.buyer.buys.load(Ordering::SeqCst), 0, "not bought twice");
    assert_eq!(rig.buyer.settles.load(Ordering::SeqCst), 1);
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Deliver(..))), 1);
}

#[tokio::test]
async fn a_restart_after_create_deal_was_sent_follows_the_deal_on_chain_without_buying_again() {
    // Killed once `createDeal` was mined but before the board recorded it: the signed deal
    // was recorded first, and the chain has it.
    let rig = Rig::new(FakeBuyer::default());
    let id = rig.request(1, 5_000);
    let signed = created_deal(1);
    rig.chain.create(&signed.deal.deal);
    let job = BoardJob {
        stage: BoardStage::Signed { deal: Box::new(signed.deal.clone()), spec: Box::new(signed.spec), since_block: 0 },
        ..BoardJob::new(id)
    };
    rig.handle(job).await;
    let counts = [&rig.buyer.buys, &rig.buyer.creates, &rig.buyer.settles].map(|n| n.load(Ordering::SeqCst));
    assert_eq!(counts, [0, 0, 1], "neither bought nor created again, and followed");
    assert_eq!(
        rig.chain.txs(),
        [Tx::Claim(id, signed.deal.id), Tx::Deliver(id, signed.deal.id)],
        "no createDeal sent again"
    );
}

#[tokio::test]
async fn a_signed_deal_never_created_is_created_in_time_or_bought_again_after_its_deadline() {
    let rig = Rig::new(FakeBuyer::default());
    let signed = created_deal(1);
    let record = |id| BoardJob {
        stage: BoardStage::Signed {
            deal: Box::new(signed.deal.clone()),
            spec: Box::new(signed.spec.clone()),
            since_block: 0,
        },
        ..BoardJob::new(id)
    };
    // Killed before `createDeal` was sent, restarted before the creation deadline (1,500).
    let first = rig.request(1, 5_000);
    rig.handle(record(first)).await;
    let counts = |b: &FakeBuyer| [&b.buys, &b.creates, &b.settles].map(|n| n.load(Ordering::SeqCst));
    assert_eq!(counts(&rig.buyer), [0, 1, 1], "created from the record, not bought again");
    // Restarted once a block is past the creation deadline: the signature is worthless, so
    // the request is bought again.
    rig.chain.advance(501);
    let second = rig.request(2, 5_000);
    rig.handle(record(second)).await;
    assert_eq!(counts(&rig.buyer), [1, 2, 2]);
    assert!(matches!(rig.stored(second).stage, BoardStage::Delivered { .. }));
}

#[tokio::test]
async fn a_deal_its_provider_spoilt_is_bought_again_at_once_not_retried_until_its_deadline() {
    let rig = Rig::new(FakeBuyer { spoilt: AtomicU32::new(1), ..Default::default() });
    let id = rig.request(1, 5_000);
    rig.handle(BoardJob::new(id)).await;
    let counts = |b: &FakeBuyer| [&b.buys, &b.creates, &b.settles].map(|n| n.load(Ordering::SeqCst));
    assert_eq!(counts(&rig.buyer), [2, 2, 1], "bought again after the spoilt deal, then created and followed");
    assert_eq!(rig.stored(id).attempts, 0, "not a failure of the board's: no backoff");
    assert!(matches!(rig.stored(id).stage, BoardStage::Delivered { .. }));
}

#[tokio::test]
async fn an_expired_request_moves_to_failed_without_buying() {
    let rig = Rig::new(FakeBuyer::default());
    let id = rig.request(1, 999);
    rig.handle(BoardJob::new(id)).await;
    assert_eq!(rig.stored(id).stage, BoardStage::Failed { reason: Failure::DeadlinePassed });
    assert_eq!(rig.buyer.buys.load(Ordering::SeqCst), 0);
    assert!(rig.chain.txs().is_empty());
}

#[tokio::test]
async fn a_failed_purchase_backs_off_instead_of_looping() {
    let rig = Rig::new(FakeBuyer { failing: true, ..Default::default() });
    let id = rig.request(1, 5_000);
    let token = CancellationToken::new();
    let task = tokio::spawn(rig.service.clone().handle(BoardJob::new(id), token.clone()));
    // While the chain's clock stands still, one purchase, then waiting for the retry time
    // (the old loop bought again at once, hundreds of times in this window).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.buyer.buys.load(Ordering::SeqCst), 1);
    let stored = rig.stored(id);
    assert_eq!((stored.attempts, stored.retry_at), (1, 1_005));
    // Once the chain's clock passes the retry time, it tries again, and waits longer.
    rig.chain.advance(5);
    while rig.buyer.buys.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.buyer.buys.load(Ordering::SeqCst), 2);
    assert_eq!(rig.stored(id).retry_at, 1_015);
    token.cancel();
    task.await.unwrap().unwrap();
}
