//! Unit tests of the solver core on the in-memory store.
use super::*;
use crate::protocol::{JobOffer, ResourceOffer, SignedJobOffer, SignedResourceOffer};
use crate::solver::store::MemoryStore;
use crate::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use alloy::primitives::Bytes;

pub(super) const T0: u64 = 1_000_000_000;

pub(super) fn cfg() -> CoreConfig {
    CoreConfig {
        solver: Address::repeat_byte(5),
        chain_id: 1337,
        deals_contract: Address::repeat_byte(0xde),
        offer_max_ahead_secs: 3600,
        request_max_ahead_secs: 300,
        max_open_offers: 10,
        max_open_offers_total: 1_000,
        sign_timeout_secs: 60,
        create_timeout_secs: 300,
        result_retention_secs: 3600,
        min_mediators: 1,
        fault: None,
    }
}

pub(super) fn core(store: Arc<dyn Store>) -> Core {
    Core::open(cfg(), store, broadcast::channel(64).0).unwrap()
}

pub(super) fn resource(n: u8, price: u64) -> (SignedResourceOffer, B256) {
    let offer = ResourceOffer {
        provider: Address::repeat_byte(0xa0 + n),
        solver: cfg().solver,
        cpu: 1000,
        ramMb: 1000,
        gpus: 0,
        vramMb: 0,
        diskMb: 0,
        slots: 1,
        price: U256::from(price),
        collateral: U256::from(10),
        mediators: vec![Address::repeat_byte(0xee)],
        modules: vec![],
        maxTimeoutSecs: 3600,
        maxSpecBytes: 65_536,
        maxOutputBytes: 1 << 30,
        expiry: T0 / 1000 + 1000,
        nonce: U256::from(n),
    };
    let signed = SignedResourceOffer { offer, signature: Bytes::from(vec![0; 65]) };
    let id = signed.id(&protocol::domain(1337, cfg().deals_contract));
    (signed, id)
}

pub(super) fn job(n: u8) -> (SignedJobOffer, B256) {
    let spec = JobSpec {
        module: ModuleRef { name: "m".into(), version: "1".into(), hash: "h".into() },
        image: "i".into(),
        argv: vec![n.to_string()],
        env: Default::default(),
        resources: Resources { cpu: 500, ram_mb: 100, ..Default::default() },
        network: NetworkPolicy::None,
        timeout_secs: 10,
        outputs: vec![],
        success_exit_codes: vec![],
        run_as_root: false,
    };
    let offer = JobOffer {
        jobCreator: Address::repeat_byte(0xc0),
        solver: cfg().solver,
        jobHash: spec.content_hash(),
        maxPrice: U256::from(100),
        mediationFee: U256::from(1),
        auditFee: U256::from(1),
        auditPpm: 1_000_000,
        mediators: vec![Address::repeat_byte(0xee)],
        resultTimeout: 60,
        judgeTimeout: 60,
        mediationTimeout: 60,
        expiry: T0 / 1000 + 1000,
        nonce: U256::from(100 + u64::from(n)),
    };
    let signed = SignedJobOffer { offer, spec, signature: Bytes::from(vec![0; 65]) };
    let id = signed.id(&protocol::domain(1337, cfg().deals_contract));
    (signed, id)
}

pub(super) fn deal_of(c: &Core, id: &B256) -> Option<DealRecord> {
    c.deal(id).unwrap()
}

pub(super) fn offer(c: &Core, id: &B256) -> Option<OfferRecord> {
    c.offer(id).unwrap()
}

pub(super) fn post_r(c: &mut Core, n: u8, price: u64) -> B256 {
    let (s, id) = resource(n, price);
    c.post_resource_offer(s, id, T0).unwrap();
    id
}

pub(super) fn post_j(c: &mut Core, n: u8) -> JobOfferRecord {
    let (s, id) = job(n);
    c.post_job_offer(s, id, T0).unwrap()
}

#[test]
fn a_lapsed_proposal_goes_to_another_provider() {
    let mut c = core(Arc::new(MemoryStore::new()));
    let cheap = post_r(&mut c, 1, 5);
    let dear = post_r(&mut c, 2, 9);
    let first = post_j(&mut c, 1).deal.unwrap();
    assert_eq!(deal_of(&c, &first).unwrap().resource_offer, cheap);
    assert_eq!(c.housekeeping(T0 + 59_000).unwrap(), 0, "not yet");
    assert_eq!(c.housekeeping(T0 + 60_000).unwrap(), 1);
    assert_eq!(deal_of(&c, &first).unwrap().state, DealStatus::Expired);
    let (_, job_id) = job(1);
    let OfferRecord::Job(j) = offer(&c, &job_id).unwrap() else { panic!() };
    assert_eq!(j.excluded, vec![cheap]);
    let second = j.deal.expect("matched again at once");
    assert_eq!(deal_of(&c, &second).unwrap().resource_offer, dear, "not the provider that let it lapse");
    // The cheap slot is free again, but its provider is paused for the sign timeout
    // (THREATS V2): the next job waits, and gets the slot once the pause is over.
    assert!(post_j(&mut c, 2).deal.is_none(), "paused");
    let provider = resource(1, 5).0.offer.provider;
    assert_eq!(c.strikes(&provider).unwrap().until, T0 / 1000 + 120);
    c.housekeeping(T0 + 119_000).unwrap();
    let (_, next_id) = job(2);
    assert!(matches!(offer(&c, &next_id), Some(OfferRecord::Job(j)) if j.deal.is_none()), "still paused");
    c.housekeeping(T0 + 120_000).unwrap();
    let Some(OfferRecord::Job(j)) = offer(&c, &next_id) else { panic!() };
    assert_eq!(deal_of(&c, &j.deal.expect("matched once the pause is over")).unwrap().resource_offer, cheap);
}

#[test]
fn a_provider_that_keeps_letting_proposals_lapse_is_paused_longer_each_time() {
    let mut c = core(Arc::new(MemoryStore::new()));
    post_r(&mut c, 1, 5);
    let provider = resource(1, 5).0.offer.provider;
    let mut now_ms = T0;
    let mut pauses = vec![];
    for n in 1..=4u8 {
        let (s, id) = job(n);
        let posted = c.post_job_offer(s, id, now_ms).unwrap();
        assert!(posted.deal.is_some(), "job {n} proposed to the provider");
        now_ms += 60_000;
        c.housekeeping(now_ms).unwrap();
        let strikes = c.strikes(&provider).unwrap();
        assert_eq!(strikes.count, u32::from(n));
        pauses.push(strikes.until - now_ms / 1000);
        // The job lapsed here waits while the provider is paused; let it expire.
        now_ms = strikes.until * 1000;
        c.housekeeping(now_ms).unwrap();
    }
    assert_eq!(pauses, [60, 120, 240, 480]);
}

#[test]
fn a_signed_deal_never_created_closes_its_job() {
    let mut c = core(Arc::new(MemoryStore::new()));
    post_r(&mut c, 1, 5);
    let deal = post_j(&mut c, 1).deal.unwrap();
    let signer = alloy::signers::local::PrivateKeySigner::random();
    // A signature by someone else than the provider is refused.
    let sig = Bytes::from(alloy::signers::SignerSync::sign_hash_sync(&signer, &deal).unwrap().as_bytes().to_vec());
    let recovered = crate::protocol::recover(&deal, &sig).unwrap();
    assert!(matches!(
        c.sign_deal(deal, sig, recovered, T0),
        Err(SolverError::Protocol(ProtocolError::WrongSigner { .. }))
    ));
    // Pretend the provider signed (the store takes the record as is).
    let mut d = deal_of(&c, &deal).unwrap();
    d.state = DealStatus::Signed;
    d.provider_signature = Some(Bytes::from(vec![1; 65]));
    let mut txn = c.txn(T0);
    c.set_deal(&mut txn, d);
    c.commit(txn).unwrap();
    // Lapsed when `createDeal` would revert: after the creation deadline, which gives the
    // provider its time to sign and the job creator its time to create, and the time a
    // block's timestamp may lag.
    let deadline_ms = deal_of(&c, &deal).unwrap().deal.createDeadline * 1000;
    assert_eq!(deadline_ms, T0 + 360_000, "matched at T0, plus 60 s to sign and 300 s to create");
    let lag_ms = crate::protocol::CREATE_LAG_SECS * 1000;
    c.housekeeping(deadline_ms + lag_ms).unwrap();
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::Signed);
    c.housekeeping(deadline_ms + lag_ms + 1).unwrap();
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::Expired);
    assert_eq!(offer(&c, &job(1).1).unwrap().status(), OfferStatus::Closed);
    // Created on chain after all: followed again.
    c.chain_state(deal, DealStatus::Created, deadline_ms + lag_ms + 1_000).unwrap();
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::Created);
}

#[test]
fn chain_states_only_move_forward_and_a_final_one_frees_the_slot() {
    let mut c = core(Arc::new(MemoryStore::new()));
    let r = post_r(&mut c, 1, 5);
    let deal = post_j(&mut c, 1).deal.unwrap();
    let waiting = post_j(&mut c, 2);
    assert_eq!(waiting.status, OfferStatus::Open);
    c.chain_state(deal, DealStatus::ResultSubmitted, T0).unwrap();
    c.chain_state(deal, DealStatus::Created, T0).unwrap();
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::ResultSubmitted);
    c.chain_state(B256::repeat_byte(9), DealStatus::Accepted, T0).unwrap();
    c.chain_state(deal, DealStatus::Accepted, T0).unwrap();
    let OfferRecord::Job(j) = offer(&c, &waiting.id).unwrap() else { panic!() };
    assert_eq!(deal_of(&c, &j.deal.unwrap()).unwrap().resource_offer, r);
}

#[test]
fn offers_expire_and_leave_the_matcher() {
    let mut c = core(Arc::new(MemoryStore::new()));
    let r = post_r(&mut c, 1, 5);
    assert_eq!(c.housekeeping(T0 + 1_000_000).unwrap(), 1);
    assert_eq!(offer(&c, &r).unwrap().status(), OfferStatus::Expired);
    assert_eq!(c.stats().open_resource_offers, 0);
}

#[test]
fn reopening_restores_busy_slots_and_limits() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut c = core(store.clone());
    post_r(&mut c, 1, 5);
    let deal = post_j(&mut c, 1).deal.unwrap();
    c.flush().unwrap();
    let seq = c.stats().last_event_seq;
    drop(c);
    let mut c = core(store);
    assert_eq!(c.stats().last_event_seq, seq);
    assert_eq!(post_j(&mut c, 2).status, OfferStatus::Open, "the only slot is still held");
    assert!(matches!(c.post_job_offer(job(2).0, job(2).1, T0), Err(SolverError::NonceReused { .. })));
    c.chain_state(deal, DealStatus::Accepted, T0).unwrap();
    assert_eq!(offer(&c, &job(2).1).unwrap().status(), OfferStatus::Matched);
}

#[test]
fn open_offers_per_account_are_limited() {
    let mut c = core(Arc::new(MemoryStore::new()));
    for n in 0..10 {
        post_j(&mut c, n);
    }
    assert!(matches!(c.post_job_offer(job(10).0, job(10).1, T0), Err(SolverError::TooManyOffers { .. })));
}

/// The counters behind `stats` agree with a walk of every record after posts, matches,
/// lapses, expiries and a reload (THREATS V3: metrics never walk the records).
#[test]
fn stats_counters_agree_with_the_records() {
    fn walked(c: &Core) -> (BTreeMap<String, usize>, BTreeMap<&'static str, usize>) {
        let mut offers = BTreeMap::new();
        for o in c.store.offers().unwrap() {
            let kind = if matches!(o, OfferRecord::Resource(_)) { "resource" } else { "job" };
            let status = serde_json::to_value(o.status()).unwrap().as_str().unwrap().to_string();
            *offers.entry(format!("{kind}:{status}")).or_default() += 1;
        }
        let mut deals: BTreeMap<&'static str, usize> = DealStatus::ALL.iter().map(|s| (s.name(), 0)).collect();
        for d in c.store.deals().unwrap() {
            *deals.entry(d.state.name()).or_default() += 1;
        }
        (offers, deals)
    }
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut c = core(store.clone());
    post_r(&mut c, 1, 5);
    post_r(&mut c, 2, 9);
    post_j(&mut c, 1);
    post_j(&mut c, 2);
    post_j(&mut c, 3);
    c.housekeeping(T0 + 60_000).unwrap();
    let check = |c: &mut Core| {
        c.flush().unwrap();
        let s = c.stats();
        assert_eq!((s.offers.clone(), s.deals.clone()), walked(c), "{s:?}");
    };
    check(&mut c);
    c.housekeeping(T0 + 2_000_000).unwrap();
    check(&mut c);
    let mut reopened = core(store);
    check(&mut reopened);
    assert!(c.stats().offers.values().sum::<usize>() == 5);
    assert!(c.offers.is_empty(), "final offers left memory");
    assert_eq!(
        c.offers(&OfferQuery { status: Some(OfferStatus::Expired), limit: 10, ..Default::default() }).unwrap().len(),
        5,
        "all five expired, listed from the store"
    );
}

/// Proposals of several slots that lapse together are one lapse: a provider away for one
/// sign timeout is paused for one, not for a lapse per slot.
#[test]
fn lapses_of_one_pass_are_one_strike() {
    let mut c = core(Arc::new(MemoryStore::new()));
    let (mut s, _) = resource(1, 5);
    s.offer.slots = 3;
    let id = s.id(&protocol::domain(1337, cfg().deals_contract));
    c.post_resource_offer(s.clone(), id, T0).unwrap();
    for n in 1..=3 {
        assert!(post_j(&mut c, n).deal.is_some());
    }
    assert_eq!(c.housekeeping(T0 + 60_000).unwrap(), 3);
    let strikes = c.strikes(&s.offer.provider).unwrap();
    assert_eq!((strikes.count, strikes.until), (1, T0 / 1000 + 120));
}

#[test]
fn live_deals_are_counted_per_provider_across_a_restart_and_unbacked_offers_close() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut c = core(store.clone());
    let r = post_r(&mut c, 1, 5);
    let provider = Address::repeat_byte(0xa1);
    assert_eq!(c.live_deals_of(&provider), 0);
    let deal = post_j(&mut c, 1).deal.unwrap();
    assert_eq!(c.live_deals_of(&provider), 1, "a proposed deal holds its slot");
    c.chain_state(deal, DealStatus::Created, T0).unwrap();
    assert_eq!(c.live_deals_of(&provider), 1);
    drop(c);
    let mut c = core(store);
    assert_eq!(c.live_deals_of(&provider), 1, "rebuilt from the store");
    assert_eq!(c.providers_with_open_offers(), [provider]);
    // Its one slot is held: nothing more to back, so no escrow at all keeps it open.
    assert_eq!(c.close_unbacked(provider, U256::ZERO, T0).unwrap(), 0);
    c.chain_state(deal, DealStatus::Accepted, T0).unwrap();
    assert_eq!(c.live_deals_of(&provider), 0);
    assert!(!c.deals.contains_key(&deal), "a final deal leaves memory");
    assert!(!c.offers.contains_key(&job(1).1), "and its matched job offer");
    assert_eq!(offer(&c, &job(1).1).unwrap().status(), OfferStatus::Matched);
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::Accepted, "and is read from the store");
    let listed = c.deals(&DealQuery { party: Some(provider), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(listed.iter().map(|d| (d.id, d.state)).collect::<Vec<_>>(), [(deal, DealStatus::Accepted)]);
    // The slot is free again: collateral 10 is needed, 9 is short.
    assert_eq!(c.close_unbacked(provider, U256::from(10), T0).unwrap(), 0);
    assert_eq!(c.close_unbacked(provider, U256::from(9), T0).unwrap(), 1);
    assert_eq!(offer(&c, &r).unwrap().status(), OfferStatus::Cancelled);
    assert!(c.providers_with_open_offers().is_empty());
    assert_eq!(post_j(&mut c, 2).status, OfferStatus::Open, "a closed offer matches nothing");
}

/// A store whose writes wait at a gate, or fail, on demand: to see the write pipeline
/// between a decision and its write.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    held: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    fail_next: std::sync::atomic::AtomicBool,
}

impl GatedStore {
    fn hold(&self, held: bool) {
        *self.held.lock().unwrap() = held;
        self.opened.notify_all();
    }
}

impl Store for GatedStore {
    fn apply(&self, batch: crate::solver::store::Batch) -> Result<(), StoreError> {
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.opened.wait(held).unwrap();
        }
        if self.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Db { path: "gated".into(), message: "No space left on device".into() });
        }
        self.inner.apply(batch)
    }
    fn offer(&self, id: &B256) -> Result<Option<OfferRecord>, StoreError> {
        self.inner.offer(id)
    }
    fn offers(&self) -> Result<Vec<OfferRecord>, StoreError> {
        self.inner.offers()
    }
    fn deal(&self, id: &B256) -> Result<Option<DealRecord>, StoreError> {
        self.inner.deal(id)
    }
    fn deals(&self) -> Result<Vec<DealRecord>, StoreError> {
        self.inner.deals()
    }
    fn result(&self, deal: &B256) -> Result<Option<ResultRecord>, StoreError> {
        self.inner.result(deal)
    }
    fn nonce_used(&self, account: Address, nonce: U256) -> Result<bool, StoreError> {
        self.inner.nonce_used(account, nonce)
    }
    fn prune_nonces(&self, now: u64) -> Result<usize, StoreError> {
        self.inner.prune_nonces(now)
    }
    fn events_for(&self, account: Address, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.inner.events_for(account, after, limit)
    }
    fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.inner.last_event_seq()
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.meta(key)
    }
}

/// THREATS V3, no lock across writes: a change returns while its write waits; until it is
/// written, reads that go to the store see it (a nonce spent in flight is spent, a deal
/// that left memory reads as it was decided), and nobody is told of it; once written, its
/// events go out in order and its receipt resolves.
#[tokio::test]
async fn changes_return_before_their_write_and_read_through_while_in_flight() {
    let store = Arc::new(GatedStore::default());
    let (events, mut told) = broadcast::channel(64);
    let mut c = Core::open(cfg(), store.clone(), events).unwrap();
    store.hold(true);
    post_r(&mut c, 1, 5);
    let deal = post_j(&mut c, 1).deal.unwrap();
    c.chain_state(deal, DealStatus::Accepted, T0).unwrap();
    let receipt = c.take_receipt().expect("a change was committed");
    assert!(store.inner.offers().unwrap().is_empty(), "nothing is written yet");
    assert!(matches!(c.post_job_offer(job(1).0, job(1).1, T0), Err(SolverError::NonceReused { .. })));
    assert!(!c.deals.contains_key(&deal), "the settled deal left memory");
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::Accepted, "and reads as decided");
    assert_eq!(offer(&c, &job(1).1).unwrap().status(), OfferStatus::Matched);
    assert!(told.try_recv().is_err(), "nobody is told before the write");
    assert_eq!(c.stats().last_event_seq, 0);

    store.hold(false);
    receipt.durable().await.unwrap();
    let seqs: Vec<u64> = std::iter::from_fn(|| told.try_recv().ok()).map(|e| e.seq).collect();
    assert!(seqs.len() >= 4 && seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order: {seqs:?}");
    assert_eq!(c.stats().last_event_seq, *seqs.last().unwrap());
    assert_eq!(store.inner.deal(&deal).unwrap().unwrap().state, DealStatus::Accepted);
    c.flush().unwrap();
    assert!(c.overlay.is_empty(), "written writes leave the overlay");
}

/// A failed write fails its change and every change queued after it; the core rebuilds
/// its memory from the store, so what was never written never happened (the nonce is
/// free again, the slot too).
#[tokio::test]
async fn a_failed_write_fails_the_changes_after_it_and_memory_is_rebuilt() {
    let store = Arc::new(GatedStore::default());
    let mut c = Core::open(cfg(), store.clone(), broadcast::channel(64).0).unwrap();
    let r = post_r(&mut c, 1, 5);
    c.flush().unwrap();
    store.hold(true);
    store.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(post_j(&mut c, 1).deal.is_some());
    let first = c.take_receipt().unwrap();
    assert_eq!(post_j(&mut c, 2).status, OfferStatus::Open, "the slot is taken in memory");
    let second = c.take_receipt().unwrap();
    store.hold(false);
    assert!(first.durable().await.is_err());
    assert!(second.durable().await.is_err(), "it built on the failed one");
    assert!(c.needs_recovery());
    assert!(matches!(c.post_job_offer(job(3).0, job(3).1, T0), Err(SolverError::Store(_))), "refused, then rebuilt");
    assert!(!c.needs_recovery());
    assert_eq!(offer(&c, &job(1).1), None, "never written, never happened");
    assert_eq!(c.deals(&DealQuery { limit: 10, ..Default::default() }).unwrap().len(), 0);
    let again = post_j(&mut c, 1);
    assert!(again.deal.is_some(), "the nonce and the slot are free again");
    c.flush().unwrap();
    assert_eq!(store.inner.deal(&again.deal.unwrap()).unwrap().unwrap().resource_offer, r);
}

/// A job offer that matches as it is posted is written once, matched: the counters, the
/// owner's open offers, the events and a core reloaded from the store all agree with one
/// that saw it open first.
#[test]
fn a_job_offer_matched_as_posted_is_counted_and_reloaded_as_matched() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut c = core(store.clone());
    post_r(&mut c, 1, 5);
    let (s, id) = job(1);
    let posted = c.post_job_offer(s, id, T0).unwrap();
    assert_eq!(posted.status, OfferStatus::Matched);
    let deal = posted.deal.expect("matched at once");
    c.flush().unwrap();
    let stats = c.stats();
    assert_eq!(stats.offers.get("job:matched"), Some(&1));
    assert_eq!(stats.offers.get("job:open"), None, "never counted open");
    assert_eq!(stats.open_job_offers, 0);
    assert_eq!(c.open_by_owner.get(&Address::repeat_byte(0xc0)), None, "not among its owner's open offers");
    // Posted, then the deal: in that order, numbered without a gap.
    let events = store.events_for(Address::repeat_byte(0xc0), 0, 10).unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(matches!(events[0].kind, EventKind::OfferPosted { .. }));
    assert!(matches!(events[1].kind, EventKind::Deal { .. }));
    assert_eq!(deal_of(&c, &deal).unwrap().seq, 3);
    assert!(matches!(store.offer(&id).unwrap(), Some(OfferRecord::Job(j)) if j.status == OfferStatus::Matched));

    let again = core(store);
    let reloaded = again.stats();
    assert_eq!(
        (reloaded.offers, reloaded.deals, reloaded.last_event_seq),
        (stats.offers, stats.deals, stats.last_event_seq)
    );
    assert_eq!(again.open_by_owner, c.open_by_owner);
    assert_eq!(again.open_expiries, c.open_expiries);
}
