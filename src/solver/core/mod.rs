//! The solver's state machine: offers in, matches and deals out, every change written to
//! the store in one batch with its events before anyone is told. The API and the chain
//! follower call [`Core`] under one lock; it does no I/O there but reads of the store.
//! Writes go to a writer thread ([`writer`]): the lock is not held across them, and a
//! caller waits for its change's [`Receipt`] after letting go of the lock.
//!
//! If a store write fails, the in-memory state is rebuilt from the store, so memory never
//! stays ahead of what is durable.
//!
//! Here: the state and how it loads and commits. The changes are in [`offers`] (post,
//! match, cancel), [`deals`] (sign, results, chain states, housekeeping) and [`faults`]
//! (strikes for lapses and for signed deals that fail by the provider's doing); reads in
//! [`queries`].

mod deals;
mod faults;
mod offers;
mod queries;
#[cfg(test)]
mod tests;
mod writer;

pub use faults::{Strikes, LAPSES_FORGOTTEN_AFTER_SECS, LAPSE_PAUSE_MAX_SECS};
pub use queries::{DealQuery, OfferQuery, Stats};
pub use writer::Receipt;

use super::matcher::{JobEntry, Matcher, ResourceEntry};
use crate::protocol::records::*;
use crate::protocol::{self, ProtocolError, Verified, Verifier};
use crate::solver::maps::shrink;
use crate::solver::store::{Batch, Op, Store, StoreError};
use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::Eip712Domain;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Policy of one solver: who it is and its limits.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The solver's own address: offers must name it, deals carry it.
    pub solver: Address,
    /// Chain id of the deployment.
    pub chain_id: u64,
    /// The `DcnDeals` contract.
    pub deals_contract: Address,
    /// Largest accepted offer expiry ahead of now, seconds.
    pub offer_max_ahead_secs: u64,
    /// Largest accepted request-signature expiry ahead of now, seconds.
    pub request_max_ahead_secs: u64,
    /// Most open offers one account may have.
    pub max_open_offers: usize,
    /// Most open offers from everyone (THREATS V3).
    pub max_open_offers_total: usize,
    /// How long a provider has to sign a proposed deal, seconds.
    pub sign_timeout_secs: u64,
    /// How long a job creator has to create a signed deal on chain, seconds.
    pub create_timeout_secs: u64,
    /// How long a settled deal's result bundle is kept, seconds.
    pub result_retention_secs: u64,
    /// Fewest mediators a deal names (the network's rule, `DcnDeals.params`).
    pub min_mediators: usize,
    /// Test-only misbehaviour (`dcn solver --fault`, fault-injection builds); `None` in
    /// every real solver.
    pub fault: Option<Fault>,
}

/// Test-only misbehaviour of a solver (`--fault`, in builds with the `fault-injection`
/// feature): what the tests of the parties' own checks play against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Writes only the first of the mediators both sides trust into each deal: the
    /// hand-picked mediator both the provider and `dcn run` must refuse (THREATS SO2).
    OneMediator,
}

/// Why a request to the solver was refused.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// A signed object failed a check.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The nonce was used before by this account.
    #[error("nonce {nonce} was already used by {account}: sign again with a fresh nonce")]
    NonceReused {
        /// The account.
        account: Address,
        /// The nonce.
        nonce: U256,
    },
    /// The account has as many open offers as allowed.
    #[error("{account} already has {limit} open offers: cancel some or wait for them to match or expire")]
    TooManyOffers {
        /// The account.
        account: Address,
        /// The limit.
        limit: usize,
    },
    /// The solver holds as many open offers as it takes, from everyone.
    #[error("the solver holds its limit of {limit} open offers: try again later or use another solver")]
    Full {
        /// The limit.
        limit: usize,
    },
    /// No such offer, deal or result.
    #[error("{0}")]
    NotFound(String),
    /// The account may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The object is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// A job creator's report that a signed deal cannot be created by its provider's doing,
    /// which the chain does not bear out: nobody is struck.
    #[error("{0}")]
    NoFault(String),
    /// Not now, but the same request may succeed in a moment.
    #[error("{0}")]
    Busy(String),
    /// The deal already has a result; results are never replaced.
    #[error("deal {deal} already has a result (sha256 {sha256}): results are not replaced")]
    ResultExists {
        /// The deal.
        deal: B256,
        /// The sha256 of the bundle held.
        sha256: B256,
    },
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Txn {
    /// The writes, events included: the writer publishes the events once they are written.
    batch: Batch,
    next_seq: u64,
    now_ms: u64,
}

impl Txn {
    fn event(&mut self, accounts: Vec<Address>, kind: EventKind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.batch.push(Op::Event(Arc::new(Event { seq, at: self.now_ms, accounts, kind })));
        seq
    }

    fn put_offer(&mut self, o: &OfferRecord) {
        self.batch.push(Op::PutOffer(o.clone()));
    }

    fn put_deal(&mut self, d: &DealRecord) {
        self.batch.push(Op::PutDeal(d.clone()));
        self.event(d.parties(), EventKind::Deal { deal: Box::new(d.clone()) });
    }
}

/// What the offer list filters on, kept for every offer: the record itself stays in memory
/// only while the offer is not final.
#[derive(Debug, Clone, Copy)]
struct Listed {
    id: B256,
    resource: bool,
    owner: Address,
    status: OfferStatus,
}

impl Listed {
    fn of(o: &OfferRecord) -> Self {
        Self { id: o.id(), resource: matches!(o, OfferRecord::Resource(_)), owner: o.owner(), status: o.status() }
    }
}

/// What the deal list filters on, kept for every deal: the record itself stays in memory
/// only while the deal is not final.
#[derive(Debug, Clone)]
struct DealListed {
    id: B256,
    parties: Vec<Address>,
    state: DealStatus,
}

impl DealListed {
    fn of(d: &DealRecord) -> Self {
        Self { id: d.id, parties: d.parties(), state: d.state }
    }
}

/// The key an offer is counted under.
fn offer_key(o: &OfferRecord) -> (bool, OfferStatus) {
    (matches!(o, OfferRecord::Resource(_)), o.status())
}

/// The solver's state: every offer and deal, the matcher's index and the event sequence.
pub struct Core {
    cfg: CoreConfig,
    offers_domain: Eip712Domain,
    /// The `DcnDeals` domain's separator, for deal ids.
    deals_separator: B256,
    store: Arc<dyn Store>,
    /// Writes the batches, in order, off the lock.
    writer: writer::Writer,
    /// What the batches in flight write, for reads that go to the store.
    overlay: writer::Overlay,
    /// The receipt of the last batch committed, for the caller to wait on.
    receipt: Option<Receipt>,
    matcher: Matcher,
    /// Offers that are not final; final ones are read from the store (THREATS V3).
    offers: HashMap<B256, OfferRecord>,
    /// Every offer by arrival, with what the list filters on.
    offer_order: BTreeMap<u64, Listed>,
    /// Deals that are not final; final ones are read from the store (THREATS V3).
    deals: HashMap<B256, DealRecord>,
    /// Every deal by match order, with what the list filters on.
    deal_order: BTreeMap<u64, DealListed>,
    open_expiries: BTreeSet<(u64, B256)>,
    pending_deals: BTreeSet<B256>,
    open_by_owner: HashMap<Address, usize>,
    /// Deals not final, by provider: the slots its escrow need not back (THREATS V2).
    live_by_provider: HashMap<Address, u32>,
    /// Providers struck (lapsed proposals, signed deals failed by their doing): how often
    /// lately, and paused until when.
    strikes: HashMap<Address, Strikes>,
    /// Offers by (is a resource offer, status), and deals by state: kept as records
    /// change, so that metrics never walk the records (THREATS V3).
    offer_counts: HashMap<(bool, OfferStatus), usize>,
    deal_counts: HashMap<DealStatus, usize>,
    /// Results of settled deals, by when their retention ends (unix seconds).
    expiring_results: BTreeSet<(u64, B256)>,
    /// Held bundles by sha256: how many results name each, and its size.
    result_refs: HashMap<B256, (u32, u64)>,
    /// Bundles no result names any more, until their files are deleted.
    deleting: std::collections::HashSet<B256>,
    next_seq: u64,
}

fn resource_entry(r: &ResourceOfferRecord, busy: u32) -> ResourceEntry {
    let o = &r.signed.offer;
    ResourceEntry {
        id: r.id,
        seq: r.seq,
        provider: o.provider,
        resources: r.signed.resources(),
        price: o.price,
        collateral: o.collateral,
        mediators: o.mediators.clone(),
        modules: o.modules.clone(),
        max_timeout_secs: o.maxTimeoutSecs,
        max_spec_bytes: o.maxSpecBytes,
        max_output_bytes: o.maxOutputBytes,
        expiry: o.expiry,
        slots: o.slots,
        busy,
    }
}

fn job_entry(j: &JobOfferRecord, min_mediators: usize) -> JobEntry {
    let o = &j.signed.offer;
    JobEntry {
        id: j.id,
        seq: j.seq,
        creator: o.jobCreator,
        needs: j.signed.spec.resources,
        max_price: o.maxPrice,
        mediation_fee: o.mediationFee,
        audit_fee: o.auditFee,
        audit_ppm: o.auditPpm,
        mediators: o.mediators.clone(),
        min_mediators,
        module: j.signed.spec.module.clone(),
        timeout_secs: j.signed.spec.timeout_secs,
        spec_bytes: j.signed.spec.canonical_json().len() as u64,
        output_bytes: j.signed.spec.output_limit_bytes(),
        expiry: o.expiry,
        excluded: j.excluded.clone(),
    }
}

impl Core {
    /// Loads the state from `store`; events go to `events` once durable.
    pub fn open(
        cfg: CoreConfig,
        store: Arc<dyn Store>,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Result<Self, StoreError> {
        let mut core = Self {
            offers_domain: protocol::domain(cfg.chain_id, cfg.deals_contract),
            deals_separator: crate::chain::deals::domain(cfg.chain_id, cfg.deals_contract).separator(),
            cfg,
            writer: writer::Writer::start(store.clone(), events),
            overlay: writer::Overlay::default(),
            receipt: None,
            store,
            matcher: Matcher::new(),
            offers: HashMap::new(),
            offer_order: BTreeMap::new(),
            deals: HashMap::new(),
            deal_order: BTreeMap::new(),
            open_expiries: BTreeSet::new(),
            pending_deals: BTreeSet::new(),
            open_by_owner: HashMap::new(),
            live_by_provider: HashMap::new(),
            strikes: HashMap::new(),
            offer_counts: HashMap::new(),
            deal_counts: HashMap::new(),
            expiring_results: BTreeSet::new(),
            result_refs: HashMap::new(),
            deleting: Default::default(),
            next_seq: 1,
        };
        core.reload()?;
        Ok(core)
    }

    /// Rebuilds memory from the store (nothing may be in flight).
    fn reload(&mut self) -> Result<(), StoreError> {
        self.overlay.clear();
        self.matcher = Matcher::new();
        self.offers.clear();
        self.offer_order.clear();
        self.deals.clear();
        self.deal_order.clear();
        self.open_expiries.clear();
        self.pending_deals.clear();
        self.open_by_owner.clear();
        self.live_by_provider.clear();
        self.offer_counts.clear();
        self.deal_counts.clear();
        self.expiring_results.clear();
        self.result_refs.clear();
        self.deleting.clear();
        for (provider, s) in &self.strikes {
            self.matcher.pause(*provider, s.until);
        }
        self.next_seq = self.store.last_event_seq()? + 1;
        self.writer.set_last_event(self.next_seq - 1);
        let mut busy: HashMap<B256, u32> = HashMap::new();
        for d in self.store.deals()? {
            if let Some(r) = self.store.result(&d.id)? {
                self.hold_result(&r);
                if d.state.is_final() {
                    let due = (d.updated_at / 1000).saturating_add(self.cfg.result_retention_secs);
                    self.expiring_results.insert((due, d.id));
                }
            }
            if !d.state.is_final() {
                *busy.entry(d.resource_offer).or_default() += 1;
                *self.live_by_provider.entry(d.deal.provider).or_default() += 1;
            }
            if matches!(d.state, DealStatus::Proposed | DealStatus::Signed) {
                self.pending_deals.insert(d.id);
            }
            self.deal_order.insert(d.seq, DealListed::of(&d));
            *self.deal_counts.entry(d.state).or_default() += 1;
            if !d.state.is_final() {
                self.deals.insert(d.id, d);
            }
        }
        for o in self.store.offers()? {
            if o.status() == OfferStatus::Open {
                self.open_expiries.insert((o.expiry(), o.id()));
                *self.open_by_owner.entry(o.owner()).or_default() += 1;
                match &o {
                    OfferRecord::Resource(r) => {
                        let held = busy.get(&r.id).copied().unwrap_or(0);
                        self.restore_resource(resource_entry(r, held.min(r.signed.offer.slots)));
                    }
                    OfferRecord::Job(j) => {
                        self.restore_job(job_entry(j, self.cfg.min_mediators));
                    }
                }
            }
            self.offer_order.insert(o.seq(), Listed::of(&o));
            *self.offer_counts.entry(offer_key(&o)).or_default() += 1;
            // A matched job offer is needed while its deal is live (a lapse re-offers it).
            let kept = match &o {
                OfferRecord::Job(j) if j.status == OfferStatus::Matched => {
                    j.deal.is_some_and(|d| self.deals.contains_key(&d))
                }
                _ => !o.status().is_final(),
            };
            if kept {
                self.offers.insert(o.id(), o);
            }
        }
        Ok(())
    }

    // Restoring uses the clock at the end of time: nothing is live then, so nothing
    // matches. What was durable was already matched.
    fn restore_resource(&mut self, entry: ResourceEntry) {
        let matches = self.matcher.add_resource(entry, u64::MAX);
        debug_assert!(matches.is_empty());
    }

    fn restore_job(&mut self, entry: JobEntry) {
        let m = self.matcher.add_job(entry, u64::MAX);
        debug_assert!(m.is_none());
    }

    /// The signing domain of offers and requests.
    pub fn offers_domain(&self) -> &Eip712Domain {
        &self.offers_domain
    }

    /// The checks for a signed object arriving at `now_ms`.
    pub fn verifier(&self, now_ms: u64, request: bool) -> Verifier {
        Verifier {
            solver: self.cfg.solver,
            domain: self.offers_domain.clone(),
            now: now_ms / 1000,
            max_ahead: if request { self.cfg.request_max_ahead_secs } else { self.cfg.offer_max_ahead_secs },
        }
    }

    /// This solver's policy.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    fn txn(&self, now_ms: u64) -> Txn {
        Txn { batch: Batch::default(), next_seq: self.next_seq, now_ms }
    }

    /// Hands `txn` to the writer; its receipt is kept for [`Core::take_receipt`]. Memory
    /// already holds the change: reads of the store see it through the overlay until it is
    /// written.
    fn commit(&mut self, txn: Txn) -> Result<(), SolverError> {
        if txn.batch.is_empty() {
            return Ok(());
        }
        if self.writer.failed() {
            // This change may build on one that failed: drop it with the rest.
            self.recover();
            return Err(StoreError::Earlier.into());
        }
        self.overlay.written(self.writer.durable());
        self.overlay.add(self.writer.next_ticket(), &txn.batch);
        let receipt = self.writer.send(txn.batch);
        self.next_seq = txn.next_seq;
        self.receipt = Some(receipt);
        Ok(())
    }

    /// The receipt of the last change committed since the last call: the caller waits on it,
    /// without the lock, before telling anyone the change happened.
    pub fn take_receipt(&mut self) -> Option<Receipt> {
        self.writer.hand_over();
        self.receipt.take()
    }

    /// Hands the changes committed so far to the writer: called whenever the core's lock
    /// is let go (they are grouped until then, or until a few dozen are held). Records
    /// whose writes are done leave the overlay.
    pub fn hand_over(&mut self) {
        self.writer.hand_over();
        self.overlay.written(self.writer.durable());
    }

    /// Blocks until every change committed so far is written; an error if one failed (the
    /// state is then rebuilt from the store). For tests, benches and shutdown: the server
    /// waits on receipts instead.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.writer.fence();
        if self.writer.failed() {
            self.recover();
            return Err(StoreError::Earlier);
        }
        self.overlay.written(self.writer.durable());
        Ok(())
    }

    /// Whether a write failed and the state must be rebuilt ([`Core::recover`]).
    pub fn needs_recovery(&self) -> bool {
        self.writer.failed()
    }

    /// After a failed write: waits until the writer has refused everything queued after
    /// it, then rebuilds memory from the store.
    pub fn recover(&mut self) {
        self.writer.reset();
        self.receipt = None;
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "reloading the state from the store failed");
        }
    }

    /// Whether a verified request's nonce is still unused (it is spent when the request is
    /// carried out).
    pub fn check_fresh(&self, request: &Verified) -> Result<(), SolverError> {
        self.check_nonce(request.account, request.nonce)
    }

    fn check_nonce(&self, account: Address, nonce: U256) -> Result<(), SolverError> {
        if self.overlay.nonce_used(account, nonce) || self.store.nonce_used(account, nonce)? {
            return Err(SolverError::NonceReused { account, nonce });
        }
        Ok(())
    }

    fn check_open_limit(&self, account: Address) -> Result<(), SolverError> {
        if self.open_by_owner.get(&account).copied().unwrap_or(0) >= self.cfg.max_open_offers {
            return Err(SolverError::TooManyOffers { account, limit: self.cfg.max_open_offers });
        }
        if self.open_expiries.len() >= self.cfg.max_open_offers_total {
            return Err(SolverError::Full { limit: self.cfg.max_open_offers_total });
        }
        Ok(())
    }

    /// Checks that the verified request's nonce is fresh, and records it in `txn`.
    fn use_request(&self, txn: &mut Txn, auth: &Verified) -> Result<(), SolverError> {
        self.check_nonce(auth.account, auth.nonce)?;
        txn.batch.push(Op::UseNonce { account: auth.account, nonce: auth.nonce, expiry: auth.expiry });
        Ok(())
    }

    fn set_offer(&mut self, record: OfferRecord) {
        let was_open = self.offers.get(&record.id()).map(|o| o.status() == OfferStatus::Open).unwrap_or(false);
        let is_open = record.status() == OfferStatus::Open;
        if was_open && !is_open {
            self.open_expiries.remove(&(record.expiry(), record.id()));
            if let Some(n) = self.open_by_owner.get_mut(&record.owner()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.open_by_owner.remove(&record.owner());
                }
            }
        } else if !was_open && is_open {
            self.open_expiries.insert((record.expiry(), record.id()));
            *self.open_by_owner.entry(record.owner()).or_default() += 1;
        }
        self.offer_order.insert(record.seq(), Listed::of(&record));
        *self.offer_counts.entry(offer_key(&record)).or_default() += 1;
        let id = record.id();
        // A final offer leaves memory; its record is in the store (THREATS V3).
        let old = if record.status().is_final() {
            // Read through the overlay until its write is done.
            self.overlay.evicted_offer(self.writer.next_ticket(), record);
            self.offers.remove(&id)
        } else {
            self.offers.insert(id, record)
        };
        if let Some(old) = old {
            if let Some(n) = self.offer_counts.get_mut(&offer_key(&old)) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Gives back the room of maps a burst of records left mostly empty: a hash map keeps
    /// its peak capacity (100,000 offers open at once leave about 100 MB of empty buckets
    /// behind them otherwise). The housekeeping task calls it before handing freed memory
    /// back to the system.
    pub fn shrink_maps(&mut self) {
        shrink(&mut self.offers);
        shrink(&mut self.deals);
        shrink(&mut self.open_by_owner);
        shrink(&mut self.live_by_provider);
        shrink(&mut self.result_refs);
        self.deleting.shrink_to(self.deleting.len() * 2);
        self.overlay.shrink();
        self.matcher.shrink();
    }

    /// Deal `id`'s result, as last written.
    fn stored_result(&self, id: &B256) -> Result<Option<ResultRecord>, StoreError> {
        match self.overlay.result(id) {
            Some(r) => Ok(r.cloned()),
            None => self.store.result(id),
        }
    }

    /// Counts `r`'s bundle as held by one more result.
    fn hold_result(&mut self, r: &ResultRecord) {
        self.result_refs.entry(r.sha256).or_insert((0, r.size)).0 += 1;
    }

    fn set_deal(&mut self, txn: &mut Txn, deal: DealRecord) {
        txn.put_deal(&deal);
        if matches!(deal.state, DealStatus::Proposed | DealStatus::Signed) {
            self.pending_deals.insert(deal.id);
        } else {
            self.pending_deals.remove(&deal.id);
        }
        *self.deal_counts.entry(deal.state).or_default() += 1;
        let provider = deal.deal.provider;
        let live = !deal.state.is_final();
        let was_live = match self.deal_order.insert(deal.seq, DealListed::of(&deal)) {
            Some(old) => {
                if let Some(n) = self.deal_counts.get_mut(&old.state) {
                    *n = n.saturating_sub(1);
                }
                Some(!old.state.is_final())
            }
            None => None,
        };
        // A final deal leaves memory; its record is in the store (THREATS V3).
        if live {
            self.deals.insert(deal.id, deal);
        } else {
            self.deals.remove(&deal.id);
            self.overlay.evicted_deal(self.writer.next_ticket(), deal);
        }
        match (was_live, live) {
            (None | Some(false), true) => *self.live_by_provider.entry(provider).or_default() += 1,
            (Some(true), false) => {
                if let Some(n) = self.live_by_provider.get_mut(&provider) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.live_by_provider.remove(&provider);
                    }
                }
            }
            _ => {}
        }
    }
}
