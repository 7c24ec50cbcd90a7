//! The core's offer changes: a verified offer posted (and matched at once where a slot
//! fits), matches turned into proposed deals, an offer cancelled by its owner.

use super::{job_entry, resource_entry, Core, SolverError, Txn};
use crate::chain::bindings::DcnDeals;
use crate::chain::deals::deal_id_under;
use crate::protocol::mediators_between;
use crate::protocol::records::*;
use crate::protocol::{JobOffer, ResourceOffer, SignedJobOffer, SignedResourceOffer, Verified};
use crate::solver::escrow::resource_need;
use crate::solver::matcher::Match;
use crate::solver::store::Op;
use alloy::primitives::{keccak256, Address, B256, U256};

impl Core {
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
    /// once if a slot fits. The offer is written once, as it ends up (open, or matched with
    /// its deal).
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
        let mut record = JobOfferRecord {
            id,
            seq,
            received_at: now_ms,
            status: OfferStatus::Open,
            deal: None,
            excluded: vec![],
            signed,
        };
        if let Some(m) = self.matcher.add_job(job_entry(&record, self.cfg.min_mediators), now_ms / 1000) {
            match self.offers.get(&m.resource) {
                Some(OfferRecord::Resource(res)) => {
                    let deal = self.new_deal(&txn, &record, res);
                    record.status = OfferStatus::Matched;
                    record.deal = Some(deal.id);
                    self.set_deal(&mut txn, deal);
                }
                _ => tracing::error!(job = %id, resource = %m.resource, "match names an unknown offer; skipped"),
            }
        }
        let offer = OfferRecord::Job(record.clone());
        txn.put_offer(&offer);
        self.set_offer(offer);
        self.commit(txn)?;
        Ok(record)
    }

    /// Every mediator both sides trust, in the protocol's order.
    fn mediators_of(&self, r: &ResourceOffer, j: &JobOffer) -> Vec<Address> {
        let mut both = mediators_between(r.provider, &r.mediators, j.jobCreator, &j.mediators);
        if self.cfg.fault == Some(super::Fault::OneMediator) {
            both.truncate(1);
        }
        both
    }

    /// The proposed deal of a match between `job` and `res`, numbered as the next event of
    /// `txn`.
    fn new_deal(&self, txn: &Txn, job: &JobOfferRecord, res: &ResourceOfferRecord) -> DealRecord {
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
            mediators: self.mediators_of(r, j),
            price: r.price,
            collateral: r.collateral,
            mediationFee: j.mediationFee,
            auditFee: j.auditFee,
            auditPpm: j.auditPpm,
            resultTimeout: j.resultTimeout,
            judgeTimeout: j.judgeTimeout,
            mediationTimeout: j.mediationTimeout,
            // The provider's signature is good until the provider has had its time to
            // sign and the job creator its time to create; `createDeal` refuses it after.
            createDeadline: txn.now_ms / 1000 + self.cfg.sign_timeout_secs + self.cfg.create_timeout_secs,
            jobHash: j.jobHash,
            nonce: U256::from_be_bytes(keccak256(nonce_input).0),
        };
        let id = deal_id_under(&deal, self.deals_separator);
        tracing::info!(deal = %id, job = %job.id, resource = %res.id, price = %r.price, "matched");
        DealRecord {
            id,
            seq,
            deal,
            job_offer: job.id,
            resource_offer: res.id,
            state: DealStatus::Proposed,
            provider_signature: None,
            created_at: txn.now_ms,
            updated_at: txn.now_ms,
            refusal: None,
            fault: None,
        }
    }

    pub(super) fn make_deals(&mut self, txn: &mut Txn, matches: Vec<Match>) {
        for m in matches {
            let deal = match (self.offers.get(&m.job), self.offers.get(&m.resource)) {
                (Some(OfferRecord::Job(job)), Some(OfferRecord::Resource(res))) => self.new_deal(txn, job, res),
                _ => {
                    tracing::error!(job = %m.job, resource = %m.resource, "match names an unknown offer; skipped");
                    continue;
                }
            };
            let Some(OfferRecord::Job(job)) = self.offers.get(&m.job).cloned() else { continue };
            let job = JobOfferRecord { status: OfferStatus::Matched, deal: Some(deal.id), ..job };
            self.set_deal(txn, deal);
            let offer = OfferRecord::Job(job);
            txn.put_offer(&offer);
            self.set_offer(offer);
        }
    }

    /// Cancels an open offer on behalf of `auth.account`, which must own it.
    pub fn cancel_offer(&mut self, id: B256, auth: &Verified, now_ms: u64) -> Result<OfferRecord, SolverError> {
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth)?;
        let offer = self.offer(&id)?.ok_or_else(|| SolverError::NotFound(format!("no offer {id}")))?;
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

    /// The provider's deals that are not final (THREATS V2: slots its escrow need not back).
    pub fn live_deals_of(&self, provider: &Address) -> u32 {
        self.live_by_provider.get(provider).copied().unwrap_or(0)
    }

    /// The providers with an open resource offer.
    pub fn providers_with_open_offers(&self) -> Vec<Address> {
        let mut out: Vec<Address> = self.matcher.resources().map(|r| r.provider).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Closes `provider`'s open resource offers that its free escrow `free` no longer
    /// backs ([`resource_need`]); returns how many (THREATS V2).
    pub fn close_unbacked(&mut self, provider: Address, free: U256, now_ms: u64) -> Result<usize, SolverError> {
        let live = self.live_deals_of(&provider);
        let short: Vec<B256> = self
            .matcher
            .resources()
            .filter(|r| r.provider == provider)
            .filter(|r| match self.offers.get(&r.id) {
                Some(OfferRecord::Resource(o)) => resource_need(&o.signed.offer, live) > free,
                _ => false,
            })
            .map(|r| r.id)
            .collect();
        if short.is_empty() {
            return Ok(0);
        }
        let mut txn = self.txn(now_ms);
        for id in &short {
            let Some(OfferRecord::Resource(r)) = self.offers.get(id).cloned() else { continue };
            self.matcher.remove_resource(id);
            tracing::warn!(offer = %id, %provider, free = %free, collateral = %r.signed.offer.collateral, "resource offer closed: its provider's free escrow no longer covers its collateral");
            let offer = OfferRecord::Resource(ResourceOfferRecord { status: OfferStatus::Cancelled, ..r });
            txn.put_offer(&offer);
            txn.event(vec![provider], EventKind::OfferCancelled { offer: *id });
            self.set_offer(offer);
        }
        self.commit(txn)?;
        Ok(short.len())
    }
}
