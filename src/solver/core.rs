//! The solver's state machine: offers in, matches and deals out, every change written to
//! the store in one batch with its events before anyone is told. The API and the chain
//! follower call [`Core`] under one lock; it never does I/O but the store's.
//!
//! If a store write fails, the in-memory state is rebuilt from the store, so memory never
//! runs ahead of what is durable.

use super::matcher::{common_mediators, JobEntry, Match, Matcher, ResourceEntry};
use super::records::*;
use crate::chain::bindings::DcnDeals;
use crate::chain::deals::deal_id;
use crate::protocol::{self, AuthHeaders, ProtocolError, SignedJobOffer, SignedResourceOffer, Verifier};
use crate::store::{Batch, Op, Store, StoreError};
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
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
    /// How long a provider has to sign a proposed deal, seconds.
    pub sign_timeout_secs: u64,
    /// How long a job creator has to create a signed deal on chain, seconds.
    pub create_timeout_secs: u64,
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
    /// No such offer, deal or result.
    #[error("{0}")]
    NotFound(String),
    /// The account may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The object is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Open resource offers.
    pub open_resource_offers: usize,
    /// Job offers waiting for a match.
    pub open_job_offers: usize,
    /// Offers by kind and status.
    pub offers: BTreeMap<String, usize>,
    /// Deals by state.
    pub deals: BTreeMap<&'static str, usize>,
    /// Matches made since the store was created.
    pub matches_total: u64,
    /// Sequence number of the last event.
    pub last_event_seq: u64,
}

/// Filters of the offer list.
#[derive(Debug, Clone, Default)]
pub struct OfferQuery {
    /// `Some(true)` resource offers, `Some(false)` job offers.
    pub resource: Option<bool>,
    /// Only this owner's.
    pub owner: Option<Address>,
    /// Only in this status.
    pub status: Option<OfferStatus>,
    /// Only with a sequence number above this.
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

/// Filters of the deal list.
#[derive(Debug, Clone, Default)]
pub struct DealQuery {
    /// Only deals this account is a party of.
    pub party: Option<Address>,
    /// Only in this state.
    pub state: Option<DealState>,
    /// Only with a sequence number above this.
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

struct Txn {
    batch: Batch,
    events: Vec<Event>,
    next_seq: u64,
    now_ms: u64,
}

impl Txn {
    fn event(&mut self, accounts: Vec<Address>, kind: EventKind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let e = Event { seq, at: self.now_ms, accounts, kind };
        self.batch.push(Op::Event(e.clone()));
        self.events.push(e);
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

/// The solver's state: every offer and deal, the matcher's index and the event sequence.
pub struct Core {
    cfg: CoreConfig,
    offers_domain: Eip712Domain,
    deals_domain: Eip712Domain,
    store: Arc<dyn Store>,
    events: broadcast::Sender<Arc<Event>>,
    matcher: Matcher,
    offers: HashMap<B256, OfferRecord>,
    offer_order: BTreeMap<u64, B256>,
    deals: HashMap<B256, DealRecord>,
    deal_order: BTreeMap<u64, B256>,
    open_expiries: BTreeSet<(u64, B256)>,
    pending_deals: BTreeSet<B256>,
    open_by_owner: HashMap<Address, usize>,
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
        expiry: o.expiry,
        slots: o.slots,
        busy,
    }
}

fn job_entry(j: &JobOfferRecord) -> JobEntry {
    let o = &j.signed.offer;
    JobEntry {
        id: j.id,
        seq: j.seq,
        creator: o.jobCreator,
        needs: j.signed.spec.resources,
        max_price: o.maxPrice,
        mediation_fee: o.mediationFee,
        mediators: o.mediators.clone(),
        module: j.signed.spec.module.name.clone(),
        module_version: j.signed.spec.module.version.clone(),
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
            deals_domain: crate::chain::deals::domain(cfg.chain_id, cfg.deals_contract),
            cfg,
            store,
            events,
            matcher: Matcher::new(),
            offers: HashMap::new(),
            offer_order: BTreeMap::new(),
            deals: HashMap::new(),
            deal_order: BTreeMap::new(),
            open_expiries: BTreeSet::new(),
            pending_deals: BTreeSet::new(),
            open_by_owner: HashMap::new(),
            next_seq: 1,
        };
        core.reload()?;
        Ok(core)
    }

    /// Rebuilds memory from the store.
    fn reload(&mut self) -> Result<(), StoreError> {
        self.matcher = Matcher::new();
        self.offers.clear();
        self.offer_order.clear();
        self.deals.clear();
        self.deal_order.clear();
        self.open_expiries.clear();
        self.pending_deals.clear();
        self.open_by_owner.clear();
        self.next_seq = self.store.last_event_seq()? + 1;
        let mut busy: HashMap<B256, u32> = HashMap::new();
        for d in self.store.deals()? {
            if !d.state.is_final() {
                *busy.entry(d.resource_offer).or_default() += 1;
            }
            if matches!(d.state, DealState::Proposed | DealState::Signed) {
                self.pending_deals.insert(d.id);
            }
            self.deal_order.insert(d.seq, d.id);
            self.deals.insert(d.id, d);
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
                        self.restore_job(job_entry(j));
                    }
                }
            }
            self.offer_order.insert(o.seq(), o.id());
            self.offers.insert(o.id(), o);
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
        Txn { batch: Batch::default(), events: Vec::new(), next_seq: self.next_seq, now_ms }
    }

    fn commit(&mut self, txn: Txn) -> Result<(), SolverError> {
        if txn.batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.apply(txn.batch) {
            tracing::error!(error = %e, "store write failed; reloading state from the store");
            if let Err(e2) = self.reload() {
                tracing::error!(error = %e2, "reloading the state failed too");
            }
            return Err(e.into());
        }
        self.next_seq = txn.next_seq;
        for e in txn.events {
            // No subscriber is fine: the event is in the log.
            let _ = self.events.send(Arc::new(e));
        }
        Ok(())
    }

    fn check_nonce(&self, account: Address, nonce: U256) -> Result<(), SolverError> {
        if self.store.nonce_used(account, nonce)? {
            return Err(SolverError::NonceReused { account, nonce });
        }
        Ok(())
    }

    fn check_open_limit(&self, account: Address) -> Result<(), SolverError> {
        if self.open_by_owner.get(&account).copied().unwrap_or(0) >= self.cfg.max_open_offers {
            return Err(SolverError::TooManyOffers { account, limit: self.cfg.max_open_offers });
        }
        Ok(())
    }

    /// Checks the request signature and its nonce, and records the nonce in `txn`.
    fn use_request(&self, txn: &mut Txn, auth: &AuthHeaders, method: &str, path: &str) -> Result<(), SolverError> {
        auth.verify(method, path, &self.verifier(txn.now_ms, true))?;
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
            }
        } else if !was_open && is_open {
            self.open_expiries.insert((record.expiry(), record.id()));
            *self.open_by_owner.entry(record.owner()).or_default() += 1;
        }
        self.offer_order.insert(record.seq(), record.id());
        self.offers.insert(record.id(), record);
    }

    fn set_deal(&mut self, txn: &mut Txn, deal: DealRecord) {
        txn.put_deal(&deal);
        if matches!(deal.state, DealState::Proposed | DealState::Signed) {
            self.pending_deals.insert(deal.id);
        } else {
            self.pending_deals.remove(&deal.id);
        }
        self.deal_order.insert(deal.seq, deal.id);
        self.deals.insert(deal.id, deal);
    }

    /// Accepts a verified resource offer (`id` from [`SignedResourceOffer::verify`]).
    pub fn post_resource_offer(
        &mut self,
        signed: SignedResourceOffer,
        id: B256,
        now_ms: u64,
    ) -> Result<ResourceOfferRecord, SolverError> {
        let provider = signed.offer.provider;
        self.check_nonce(provider, signed.offer.nonce)?;
        self.check_open_limit(provider)?;
        let mut txn = self.txn(now_ms);
        txn.batch.push(Op::UseNonce { account: provider, nonce: signed.offer.nonce, expiry: signed.offer.expiry });
        let seq = txn.event(vec![provider], EventKind::OfferPosted { offer: id, kind: "resource".into() });
        let record = ResourceOfferRecord { id, seq, received_at: now_ms, status: OfferStatus::Open, signed };
        let offer = OfferRecord::Resource(record.clone());
        txn.put_offer(&offer);
        self.set_offer(offer);
        let matches = self.matcher.add_resource(resource_entry(&record, 0), now_ms / 1000);
        self.make_deals(&mut txn, matches);
        self.commit(txn)?;
        Ok(record)
    }

    /// Accepts a verified job offer (`id` from [`SignedJobOffer::verify`]); it is matched at
    /// once if a slot fits.
    pub fn post_job_offer(
        &mut self,
        signed: SignedJobOffer,
        id: B256,
        now_ms: u64,
    ) -> Result<JobOfferRecord, SolverError> {
        let creator = signed.offer.jobCreator;
        self.check_nonce(creator, signed.offer.nonce)?;
        self.check_open_limit(creator)?;
        let mut txn = self.txn(now_ms);
        txn.batch.push(Op::UseNonce { account: creator, nonce: signed.offer.nonce, expiry: signed.offer.expiry });
        let seq = txn.event(vec![creator], EventKind::OfferPosted { offer: id, kind: "job".into() });
        let record = JobOfferRecord {
            id,
            seq,
            received_at: now_ms,
            status: OfferStatus::Open,
            deal: None,
            excluded: vec![],
            signed,
        };
        let offer = OfferRecord::Job(record.clone());
        txn.put_offer(&offer);
        self.set_offer(offer);
        if let Some(m) = self.matcher.add_job(job_entry(&record), now_ms / 1000) {
            self.make_deals(&mut txn, vec![m]);
        }
        self.commit(txn)?;
        Ok(match &self.offers[&id] {
            OfferRecord::Job(j) => j.clone(),
            OfferRecord::Resource(_) => unreachable!("a job offer id names a job offer"),
        })
    }

    fn make_deals(&mut self, txn: &mut Txn, matches: Vec<Match>) {
        for m in matches {
            let (Some(OfferRecord::Job(job)), Some(OfferRecord::Resource(res))) =
                (self.offers.get(&m.job).cloned(), self.offers.get(&m.resource).cloned())
            else {
                tracing::error!(job = %m.job, resource = %m.resource, "match names an unknown offer; skipped");
                continue;
            };
            let j = &job.signed.offer;
            let r = &res.signed.offer;
            let seq = txn.next_seq;
            let mut nonce_input = [0u8; 72];
            nonce_input[..32].copy_from_slice(job.id.as_slice());
            nonce_input[32..64].copy_from_slice(res.id.as_slice());
            nonce_input[64..].copy_from_slice(&seq.to_be_bytes());
            let deal = DcnDeals::Deal {
                jobCreator: j.jobCreator,
                provider: r.provider,
                solver: self.cfg.solver,
                mediators: common_mediators(&resource_entry(&res, 0), &job_entry(&job)),
                price: r.price,
                collateral: r.collateral,
                mediationFee: j.mediationFee,
                resultTimeout: j.resultTimeout,
                judgeTimeout: j.judgeTimeout,
                mediationTimeout: j.mediationTimeout,
                jobHash: j.jobHash,
                nonce: U256::from_be_bytes(keccak256(nonce_input).0),
            };
            let id = deal_id(&deal, &self.deals_domain);
            let record = DealRecord {
                id,
                seq,
                deal,
                job_offer: job.id,
                resource_offer: res.id,
                state: DealState::Proposed,
                provider_signature: None,
                created_at: txn.now_ms,
                updated_at: txn.now_ms,
            };
            tracing::info!(deal = %id, job = %job.id, resource = %res.id, price = %r.price, "matched");
            self.set_deal(txn, record);
            let job = JobOfferRecord { status: OfferStatus::Matched, deal: Some(id), ..job };
            let offer = OfferRecord::Job(job);
            txn.put_offer(&offer);
            self.set_offer(offer);
        }
    }

    /// Cancels an open offer on behalf of `auth.account`, which must own it.
    pub fn cancel_offer(
        &mut self,
        id: B256,
        auth: &AuthHeaders,
        path: &str,
        now_ms: u64,
    ) -> Result<OfferRecord, SolverError> {
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth, "DELETE", path)?;
        let offer = self.offers.get(&id).cloned().ok_or_else(|| SolverError::NotFound(format!("no offer {id}")))?;
        if offer.owner() != auth.account {
            return Err(SolverError::Forbidden(format!(
                "offer {id} belongs to {}, not {}",
                offer.owner(),
                auth.account
            )));
        }
        if offer.status() != OfferStatus::Open {
            return Err(SolverError::Conflict(format!(
                "offer {id} is {:?}, not open: only open offers can be cancelled",
                offer.status()
            )));
        }
        let offer = match offer {
            OfferRecord::Resource(r) => {
                self.matcher.remove_resource(&id);
                OfferRecord::Resource(ResourceOfferRecord { status: OfferStatus::Cancelled, ..r })
            }
            OfferRecord::Job(j) => {
                self.matcher.remove_job(&id);
                OfferRecord::Job(JobOfferRecord { status: OfferStatus::Cancelled, ..j })
            }
        };
        txn.put_offer(&offer);
        txn.event(vec![offer.owner()], EventKind::OfferCancelled { offer: id });
        self.set_offer(offer.clone());
        self.commit(txn)?;
        Ok(offer)
    }

    /// Records the provider's signature of a proposed deal.
    pub fn sign_deal(&mut self, id: B256, signature: Bytes, now_ms: u64) -> Result<DealRecord, SolverError> {
        let deal = self.deals.get(&id).cloned().ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        protocol::check_signer(&id, &signature, deal.deal.provider)?;
        match deal.state {
            DealState::Proposed => {}
            DealState::Signed if deal.provider_signature.as_ref() == Some(&signature) => return Ok(deal),
            other => {
                return Err(SolverError::Conflict(format!(
                    "deal {id} is {}, not proposed: it can no longer be signed",
                    other.name()
                )))
            }
        }
        let mut txn = self.txn(now_ms);
        let deal =
            DealRecord { state: DealState::Signed, provider_signature: Some(signature), updated_at: now_ms, ..deal };
        self.set_deal(&mut txn, deal.clone());
        self.commit(txn)?;
        Ok(deal)
    }

    /// Checks that `auth` is the provider's upload request for deal `id`.
    pub fn check_upload(&self, id: B256, auth: &AuthHeaders, path: &str, now_ms: u64) -> Result<(), SolverError> {
        auth.verify("PUT", path, &self.verifier(now_ms, true))?;
        self.check_nonce(auth.account, auth.nonce)?;
        let deal = self.deals.get(&id).ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.deal.provider != auth.account {
            return Err(SolverError::Forbidden(format!(
                "only deal {id}'s provider {} may upload its result",
                deal.deal.provider
            )));
        }
        if matches!(deal.state, DealState::Proposed) || deal.state.is_final() {
            return Err(SolverError::Conflict(format!("deal {id} is {}: no result is taken now", deal.state.name())));
        }
        if let Some(existing) = self.store.result(&id)? {
            return Err(SolverError::Conflict(format!(
                "deal {id} already has a result (sha256 {}): results are not replaced",
                existing.sha256
            )));
        }
        Ok(())
    }

    /// Records an uploaded result after [`Core::check_upload`] and the upload itself.
    pub fn record_result(
        &mut self,
        auth: &AuthHeaders,
        path: &str,
        result: ResultRecord,
        now_ms: u64,
    ) -> Result<ResultRecord, SolverError> {
        self.check_upload(result.deal, auth, path, now_ms)?;
        let mut txn = self.txn(now_ms);
        txn.batch.push(Op::UseNonce { account: auth.account, nonce: auth.nonce, expiry: auth.expiry });
        txn.batch.push(Op::PutResult(result.clone()));
        let parties = self.deals[&result.deal].parties();
        txn.event(parties, EventKind::ResultUploaded { deal: result.deal, size: result.size });
        self.commit(txn)?;
        Ok(result)
    }

    /// The result of deal `id`, for its job creator or one of its mediators.
    pub fn authorize_download(
        &mut self,
        id: B256,
        auth: &AuthHeaders,
        path: &str,
        now_ms: u64,
    ) -> Result<ResultRecord, SolverError> {
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth, "GET", path)?;
        let deal = self.deals.get(&id).ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.deal.jobCreator != auth.account && !deal.deal.mediators.contains(&auth.account) {
            return Err(SolverError::Forbidden(format!(
                "only deal {id}'s job creator and mediators may download its result, not {}",
                auth.account
            )));
        }
        let result = self
            .store
            .result(&id)?
            .ok_or_else(|| SolverError::NotFound(format!("deal {id} has no result yet: wait for the provider")))?;
        self.commit(txn)?;
        Ok(result)
    }

    /// The chain says deal `id` is now in `state`. Unknown deals (made without this solver)
    /// are ignored; a state never moves backwards.
    pub fn chain_state(&mut self, id: B256, state: DealState, now_ms: u64) -> Result<(), SolverError> {
        let Some(deal) = self.deals.get(&id).cloned() else { return Ok(()) };
        let revived = deal.state == DealState::Expired;
        if deal.state == state || (!revived && deal.state > state) {
            return Ok(());
        }
        let mut txn = self.txn(now_ms);
        if revived && !state.is_final() {
            // Created on chain after the solver gave up on it: the slot is held again.
            self.matcher.hold_slot(&deal.resource_offer);
        }
        let deal = DealRecord { state, updated_at: now_ms, ..deal };
        tracing::info!(deal = %id, state = state.name(), "deal state from chain");
        self.set_deal(&mut txn, deal.clone());
        if state.is_final() && !revived {
            let matches = self.matcher.release_slot(&deal.resource_offer, now_ms / 1000);
            self.make_deals(&mut txn, matches);
        }
        self.commit(txn)
    }

    /// Expires offers and lapses deals whose time is up. Returns how many things changed.
    pub fn housekeeping(&mut self, now_ms: u64) -> Result<usize, SolverError> {
        let now = now_ms / 1000;
        let mut txn = self.txn(now_ms);
        let mut changed = 0;
        let expired: Vec<B256> = self.open_expiries.iter().take_while(|(e, _)| *e <= now).map(|(_, id)| *id).collect();
        for id in expired {
            let offer = match self.offers[&id].clone() {
                OfferRecord::Resource(r) => {
                    self.matcher.remove_resource(&id);
                    OfferRecord::Resource(ResourceOfferRecord { status: OfferStatus::Expired, ..r })
                }
                OfferRecord::Job(j) => {
                    self.matcher.remove_job(&id);
                    OfferRecord::Job(JobOfferRecord { status: OfferStatus::Expired, ..j })
                }
            };
            txn.put_offer(&offer);
            txn.event(vec![offer.owner()], EventKind::OfferExpired { offer: id });
            self.set_offer(offer);
            changed += 1;
        }
        let pending: Vec<B256> = self.pending_deals.iter().copied().collect();
        for id in pending {
            let deal = self.deals[&id].clone();
            let lapsed = match deal.state {
                DealState::Proposed => deal.updated_at + self.cfg.sign_timeout_secs * 1000 <= now_ms,
                DealState::Signed => deal.updated_at + self.cfg.create_timeout_secs * 1000 <= now_ms,
                _ => false,
            };
            if !lapsed {
                continue;
            }
            changed += 1;
            tracing::info!(deal = %id, was = deal.state.name(), "deal lapsed before it was made on chain");
            let deal = DealRecord { state: DealState::Expired, updated_at: now_ms, ..deal };
            self.set_deal(&mut txn, deal.clone());
            let mut matches = self.matcher.release_slot(&deal.resource_offer, now);
            if let Some(OfferRecord::Job(job)) = self.offers.get(&deal.job_offer).cloned() {
                let job = if deal.provider_signature.is_none() && job.signed.offer.expiry > now {
                    // The provider let it lapse: try another provider.
                    let mut job = JobOfferRecord { status: OfferStatus::Open, deal: None, ..job };
                    job.excluded.push(deal.resource_offer);
                    matches.extend(self.matcher.add_job(job_entry(&job), now));
                    job
                } else {
                    txn.event(vec![job.signed.offer.jobCreator], EventKind::OfferClosed { offer: job.id });
                    JobOfferRecord { status: OfferStatus::Closed, ..job }
                };
                let offer = OfferRecord::Job(job);
                txn.put_offer(&offer);
                self.set_offer(offer);
            }
            self.make_deals(&mut txn, matches);
        }
        self.commit(txn)?;
        Ok(changed)
    }

    /// One offer.
    pub fn offer(&self, id: &B256) -> Option<&OfferRecord> {
        self.offers.get(id)
    }

    /// Offers matching `q`, in arrival order.
    pub fn offers(&self, q: &OfferQuery) -> Vec<OfferRecord> {
        self.offer_order
            .range(q.after.saturating_add(1)..)
            .map(|(_, id)| &self.offers[id])
            .filter(|o| match q.resource {
                Some(true) => matches!(o, OfferRecord::Resource(_)),
                Some(false) => matches!(o, OfferRecord::Job(_)),
                None => true,
            })
            .filter(|o| q.owner.is_none_or(|a| o.owner() == a))
            .filter(|o| q.status.is_none_or(|s| o.status() == s))
            .take(q.limit)
            .cloned()
            .collect()
    }

    /// One deal.
    pub fn deal(&self, id: &B256) -> Option<&DealRecord> {
        self.deals.get(id)
    }

    /// Deals matching `q`, in match order.
    pub fn deals(&self, q: &DealQuery) -> Vec<DealRecord> {
        self.deal_order
            .range(q.after.saturating_add(1)..)
            .map(|(_, id)| &self.deals[id])
            .filter(|d| q.party.is_none_or(|a| d.parties().contains(&a)))
            .filter(|d| q.state.is_none_or(|s| d.state == s))
            .take(q.limit)
            .cloned()
            .collect()
    }

    /// Sequence number of the last durable event (0 when there is none).
    pub fn last_event_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Counts for metrics (walks every offer and deal).
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            open_resource_offers: self.matcher.len().0,
            open_job_offers: self.matcher.len().1,
            matches_total: self.deals.len() as u64,
            last_event_seq: self.last_event_seq(),
            ..Default::default()
        };
        for o in self.offers.values() {
            let kind = if matches!(o, OfferRecord::Resource(_)) { "resource" } else { "job" };
            let status = serde_json::to_value(o.status()).ok().and_then(|v| v.as_str().map(String::from));
            *s.offers.entry(format!("{kind}:{}", status.unwrap_or_default())).or_default() += 1;
        }
        for st in DealState::ALL {
            s.deals.insert(st.name(), 0);
        }
        for d in self.deals.values() {
            *s.deals.entry(d.state.name()).or_default() += 1;
        }
        s
    }

    /// Forgets nonces of expired signatures.
    pub fn prune_nonces(&self, now_ms: u64) -> Result<usize, StoreError> {
        self.store.prune_nonces(now_ms / 1000)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
