//! The core's deal changes: the provider's signature, the result upload and download
//! checks, states read from the chain, and housekeeping (expired offers, lapsed deals).
//! A provider's faults and strikes are in `faults.rs`.

use super::{job_entry, Core, SolverError};
use crate::protocol::records::*;
use crate::protocol::{self, Verified};
use crate::solver::store::Op;
use alloy::primitives::{Address, Bytes, B256};

impl Core {
    /// Records the provider's signature of a proposed deal; `signer` is who signed it
    /// ([`protocol::recover`], done before the lock: it is the expensive part).
    pub fn sign_deal(
        &mut self,
        id: B256,
        signature: Bytes,
        signer: Address,
        now_ms: u64,
    ) -> Result<DealRecord, SolverError> {
        let deal = self.deal(&id)?.ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if signer != deal.deal.provider {
            return Err(protocol::ProtocolError::WrongSigner { signer, claimed: deal.deal.provider }.into());
        }
        match deal.state {
            DealStatus::Proposed => {}
            DealStatus::Signed if deal.provider_signature.as_ref() == Some(&signature) => return Ok(deal),
            other => {
                return Err(SolverError::Conflict(format!(
                    "deal {id} is {}, not proposed: it can no longer be signed",
                    other.name()
                )))
            }
        }
        let mut txn = self.txn(now_ms);
        let deal =
            DealRecord { state: DealStatus::Signed, provider_signature: Some(signature), updated_at: now_ms, ..deal };
        self.set_deal(&mut txn, deal.clone());
        self.commit(txn)?;
        Ok(deal)
    }

    /// Whether `account` may upload deal `id`'s result now: it is the deal's provider, the
    /// deal is on chain and not final (THREATS V4: a deal that never reaches the chain, made
    /// by anyone with two offers, gets no disk), and no result is held yet.
    fn upload_allowed(&self, id: B256, account: Address) -> Result<DealRecord, SolverError> {
        let deal = self.deal(&id)?.ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.deal.provider != account {
            return Err(SolverError::Forbidden(format!(
                "only deal {id}'s provider {} may upload its result",
                deal.deal.provider
            )));
        }
        if !matches!(deal.state, DealStatus::Created | DealStatus::ResultSubmitted | DealStatus::Challenged) {
            return Err(SolverError::Conflict(format!(
                "deal {id} is {}: a result is taken only for a deal created on chain and not final (if it was \
                 just created, the solver has not seen the block yet: try again shortly)",
                deal.state.name()
            )));
        }
        if let Some(existing) = self.stored_result(&id)? {
            return Err(SolverError::ResultExists { deal: id, sha256: existing.sha256 });
        }
        Ok(deal)
    }

    /// Starts the provider's upload of deal `id`'s result: checks it may, and spends the
    /// request's nonce before a byte of the body is read, so the request cannot be replayed
    /// while it streams.
    pub fn begin_upload(&mut self, id: B256, auth: &Verified, now_ms: u64) -> Result<(), SolverError> {
        self.upload_allowed(id, auth.account)?;
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth)?;
        self.commit(txn)
    }

    /// Records a result uploaded after [`Core::begin_upload`], if it may still be taken.
    pub fn record_result(
        &mut self,
        auth: &Verified,
        result: ResultRecord,
        now_ms: u64,
    ) -> Result<ResultRecord, SolverError> {
        let parties = self.upload_allowed(result.deal, auth.account)?.parties();
        let mut txn = self.txn(now_ms);
        txn.batch.push(Op::PutResult(result.clone()));
        txn.event(parties, EventKind::ResultUploaded { deal: result.deal, size: result.size });
        self.commit(txn)?;
        self.hold_result(&result);
        Ok(result)
    }

    /// The sha256 of every result held: the bundles the results directory must keep.
    pub fn held_results(&self) -> std::collections::HashSet<B256> {
        self.result_refs.keys().copied().collect()
    }

    /// Whether a result names the bundle whose sha256 is `sha256`.
    pub fn holds_bundle(&self, sha256: &B256) -> bool {
        self.result_refs.contains_key(sha256)
    }

    /// Forgets the results of settled deals whose retention is over (at most 1,000 a call);
    /// returns the bundles no result names any more, with their sizes, for the caller to
    /// delete once the change is durable, and then to hand to [`Core::bundles_deleted`].
    /// Until then they are marked ([`Core::deleting_bundle`]). Without this the results
    /// quota fills for good and every later upload is refused.
    pub fn expire_results(&mut self, now_ms: u64) -> Result<Vec<(B256, u64)>, SolverError> {
        let now = now_ms / 1000;
        let due: Vec<(u64, B256)> =
            self.expiring_results.iter().take_while(|(t, _)| *t <= now).take(1_000).copied().collect();
        if due.is_empty() {
            return Ok(vec![]);
        }
        let mut txn = self.txn(now_ms);
        let mut forgotten = vec![];
        for (_, id) in &due {
            if let Some(r) = self.stored_result(id)? {
                txn.batch.push(Op::DeleteResult(*id));
                forgotten.push(r.sha256);
            }
        }
        self.commit(txn)?;
        for key in &due {
            self.expiring_results.remove(key);
        }
        let mut gone = vec![];
        for sha in forgotten {
            if let Some((n, size)) = self.result_refs.get_mut(&sha) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    gone.push((sha, *size));
                    self.result_refs.remove(&sha);
                    self.deleting.insert(sha);
                }
            }
        }
        Ok(gone)
    }

    /// Whether the bundle whose sha256 is `sha256` is about to be deleted: an upload of the
    /// same bytes must come again once it is gone.
    pub fn deleting_bundle(&self, sha256: &B256) -> bool {
        self.deleting.contains(sha256)
    }

    /// The files of these bundles from [`Core::expire_results`] are deleted.
    pub fn bundles_deleted(&mut self, sha256s: impl IntoIterator<Item = B256>) {
        for sha in sha256s {
            self.deleting.remove(&sha);
        }
    }

    /// The result of deal `id`, for its job creator or one of its mediators.
    pub fn authorize_download(&mut self, id: B256, auth: &Verified, now_ms: u64) -> Result<ResultRecord, SolverError> {
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth)?;
        let deal = self.deal(&id)?.ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.deal.jobCreator != auth.account && !deal.deal.mediators.contains(&auth.account) {
            return Err(SolverError::Forbidden(format!(
                "only deal {id}'s job creator and mediators may download its result, not {}",
                auth.account
            )));
        }
        let result = self.stored_result(&id)?.ok_or_else(|| {
            SolverError::NotFound(if deal.state.is_final() {
                format!(
                    "deal {id} is {} and holds no result: results are kept {} hours after a deal is settled",
                    deal.state.name(),
                    self.cfg.result_retention_secs / 3600
                )
            } else {
                format!("deal {id} has no result yet: wait for the provider")
            })
        })?;
        self.commit(txn)?;
        Ok(result)
    }

    /// The chain says deal `id` is now in `state`. Unknown deals (made without this solver)
    /// are ignored; a state never moves backwards.
    pub fn chain_state(&mut self, id: B256, state: DealStatus, now_ms: u64) -> Result<(), SolverError> {
        let Some(deal) = self.deal(&id)? else { return Ok(()) };
        let revived = deal.state == DealStatus::Expired;
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
            if self.stored_result(&id)?.is_some() {
                let due = (now_ms / 1000).saturating_add(self.cfg.result_retention_secs);
                self.expiring_results.insert((due, id));
            }
            let matches = self.matcher.release_slot(&deal.resource_offer, now_ms / 1000);
            self.make_deals(&mut txn, matches);
            // Its job offer stays matched for good: its record leaves memory too.
            if let Some(OfferRecord::Job(j)) = self.offers.get(&deal.job_offer) {
                if j.status == OfferStatus::Matched && j.deal == Some(id) {
                    if let Some(o) = self.offers.remove(&deal.job_offer) {
                        self.overlay.evicted_offer(self.writer.next_ticket(), o);
                    }
                }
            }
        }
        self.commit(txn)
    }

    /// The provider refuses proposed deal `id`, saying why: the deal ends at once (its slot
    /// free, the job offered to other providers) with the reason on its record, so neither
    /// the job creator nor the slot waits for the sign timeout.
    pub fn refuse_deal(
        &mut self,
        id: B256,
        auth: &Verified,
        reason: &str,
        now_ms: u64,
    ) -> Result<DealRecord, SolverError> {
        let mut txn = self.txn(now_ms);
        self.use_request(&mut txn, auth)?;
        let deal = self.deal(&id)?.ok_or_else(|| SolverError::NotFound(format!("no deal {id}")))?;
        if deal.deal.provider != auth.account {
            return Err(SolverError::Forbidden(format!(
                "only deal {id}'s provider {} may refuse it",
                deal.deal.provider
            )));
        }
        if deal.state != DealStatus::Proposed {
            return Err(SolverError::Conflict(format!(
                "deal {id} is {}, not proposed: only a proposed deal can be refused",
                deal.state.name()
            )));
        }
        let mut end = reason.len().min(MAX_REFUSAL_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let deal = DealRecord { refusal: Some(reason[..end].to_string()), ..deal };
        tracing::info!(deal = %id, reason = %reason[..end].escape_debug(), "the provider refused the deal");
        let deal = self.lapse(&mut txn, deal, now_ms, true);
        self.commit(txn)?;
        Ok(deal)
    }

    /// Ends `deal`, which never went on chain: expired, its slot free, and its job offered to
    /// other providers when `reoffer` (its provider never signed, or its signed deal cannot
    /// be created by the provider's doing) and the offer is still good; else the job offer
    /// is closed (a signed deal may still be created by its job creator until its deadline).
    pub(super) fn lapse(&mut self, txn: &mut super::Txn, deal: DealRecord, now_ms: u64, reoffer: bool) -> DealRecord {
        let now = now_ms / 1000;
        let deal = DealRecord { state: DealStatus::Expired, updated_at: now_ms, ..deal };
        self.set_deal(txn, deal.clone());
        let mut matches = self.matcher.release_slot(&deal.resource_offer, now);
        if let Some(OfferRecord::Job(job)) = self.offers.get(&deal.job_offer).cloned() {
            let job = if reoffer && job.signed.offer.expiry > now {
                // The provider let it lapse, refused it or failed it: try another provider.
                let mut job = JobOfferRecord { status: OfferStatus::Open, deal: None, ..job };
                job.excluded.push(deal.resource_offer);
                matches.extend(self.matcher.add_job(job_entry(&job, self.cfg.min_mediators), now));
                job
            } else {
                txn.event(vec![job.signed.offer.jobCreator], EventKind::OfferClosed { offer: job.id });
                JobOfferRecord { status: OfferStatus::Closed, ..job }
            };
            let offer = OfferRecord::Job(job);
            txn.put_offer(&offer);
            self.set_offer(offer);
        }
        self.make_deals(txn, matches);
        deal
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
        // One strike per provider per pass: a provider away for one sign timeout lets all
        // its slots' proposals lapse at once, and that is one lapse, not one per slot.
        let mut struck = std::collections::HashSet::new();
        for id in pending {
            let deal = self.deals[&id].clone();
            let lapsed = match deal.state {
                DealStatus::Proposed => deal.updated_at + self.cfg.sign_timeout_secs * 1000 <= now_ms,
                // Expired when the chain would refuse it: after its creation deadline, and
                // the time a block's timestamp may lag the wall clock.
                DealStatus::Signed => {
                    deal.deal.createDeadline.saturating_add(crate::protocol::CREATE_LAG_SECS).saturating_mul(1000)
                        < now_ms
                }
                _ => false,
            };
            if !lapsed {
                continue;
            }
            changed += 1;
            tracing::info!(deal = %id, was = deal.state.name(), "deal lapsed before it was made on chain");
            if deal.state == DealStatus::Proposed && struck.insert(deal.deal.provider) {
                // Before the slot is freed, so that it is not handed straight back.
                self.strike(deal.deal.provider, now, "it let a proposal lapse");
            }
            let unsigned = deal.provider_signature.is_none();
            self.lapse(&mut txn, deal, now_ms, unsigned);
        }
        let resumed = self.matcher.resume_due(now);
        changed += resumed.len();
        self.make_deals(&mut txn, resumed);
        self.strikes.retain(|_, s| s.until > now || s.last + super::LAPSES_FORGOTTEN_AFTER_SECS > now);
        self.commit(txn)?;
        Ok(changed)
    }
}
