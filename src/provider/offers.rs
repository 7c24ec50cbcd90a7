//! The provider's side of the market: its resource offer, posted and kept fresh (re-posted
//! when a quarter of its life is left, then the old one cancelled), and the proposals the
//! solver sends, checked ([`super::terms`]), recorded and only then signed.

use super::deal::{JobRecord, Stage};
use super::service::{ProviderError, ProviderService, JOBS, OFFERS};

/// Offers this provider cancelled (id → when, unix seconds): no deal is signed on them.
pub(super) const CANCELLED: &str = "cancelled_offers";
use super::terms::{self, Refusal};
use crate::clock::now_secs;
use crate::executor::Prepared;
use crate::protocol::records::{DealRecord, DealStatus, OfferRecord, OfferStatus};
use crate::protocol::{OfferKind, ResourceOffer, SignedResourceOffer};
use crate::types::JobSpec;
use crate::units::format_amount;
use alloy::primitives::{B256, U256};
use std::time::Duration;

/// How long a proposal waits for a slot that a finishing deal holds.
const SLOT_WAIT: Duration = Duration::from_secs(3);

impl ProviderService {
    /// Cancels offers left open by an earlier run: a fresh one is posted with current terms.
    pub(super) async fn cancel_stale_offers(&self) {
        let Ok(offers) = self.kv.all::<SignedResourceOffer>(OFFERS) else { return };
        let domain = self.solver.info().domain();
        for o in offers.into_iter().filter(|o| o.offer.expiry > now_secs()) {
            let id = o.id(&domain);
            if let Ok(OfferRecord::Resource(r)) = self.solver.offer(id, OfferKind::Resource).await {
                if r.status == OfferStatus::Open {
                    let _ = self.solver.cancel_offer(&self.signer, id, OfferKind::Resource).await;
                }
            }
            if let Err(e) = self.kv.put(CANCELLED, id.as_slice(), &now_secs()) {
                tracing::warn!(offer = %id, error = %e, "cannot record the offer as cancelled");
            }
        }
    }

    /// Posts a new offer when there is none or a quarter of its life is left, then cancels
    /// the old one.
    pub(super) async fn keep_offer_fresh(&self) -> Result<(), ProviderError> {
        let now = now_secs();
        let current = *self.current_offer.lock().unwrap_or_else(|p| p.into_inner());
        let info = self.solver.info();
        let ttl = self.cfg.offer_ttl_secs.min(info.offer_max_ahead_secs).max(8);
        if let Some((_, expiry)) = current {
            if expiry > now + ttl / 4 {
                return Ok(());
            }
        }
        // The solver takes an offer only while the free escrow covers the collateral of
        // each slot not held by a live deal (THREATS V2), and closes it when it no longer
        // does.
        let held = self.active.lock().unwrap_or_else(|p| p.into_inner()).len() as u32;
        let need = self.cfg.collateral * U256::from(self.cfg.slots.saturating_sub(held));
        let deposited = self.chain.ensure_free_escrow(need).await?;
        if !deposited.is_zero() {
            tracing::info!(amount = %format_amount(deposited), "deposited collateral into escrow for the offer");
        }
        let slot = &self.offering.slot;
        let offer = ResourceOffer {
            provider: self.me(),
            solver: info.solver,
            cpu: slot.cpu,
            ramMb: slot.ram_mb,
            gpus: slot.gpus,
            vramMb: slot.vram_mb,
            diskMb: slot.disk_mb,
            slots: self.cfg.slots,
            price: self.cfg.price,
            collateral: self.cfg.collateral,
            mediators: self.offering.mediators.clone(),
            modules: self.cfg.modules.clone(),
            maxTimeoutSecs: self.cfg.limits.max_job_timeout_secs,
            maxSpecBytes: self.cfg.limits.max_spec_bytes,
            // What it can deliver: a bundle the solver would refuse (413) never reaches the
            // job creator.
            maxOutputBytes: self.cfg.limits.max_output_bytes.min(info.max_result_bytes.unwrap_or(u64::MAX)),
            expiry: now + ttl,
            nonce: U256::from_be_bytes(B256::random().0),
        };
        let domain = info.domain();
        let signed = SignedResourceOffer::sign(offer, &self.signer, &domain).await?;
        let id = signed.id(&domain);
        self.kv.put(OFFERS, id.as_slice(), &signed)?;
        self.solver.post_resource_offer(&signed).await?;
        tracing::info!(offer = %id, slots = self.cfg.slots, price = %format_amount(self.cfg.price), expires_in_secs = ttl, "offer posted");
        *self.current_offer.lock().unwrap_or_else(|p| p.into_inner()) = Some((id, signed.offer.expiry));
        if let Some((old, _)) = current {
            // Whatever the solver says, this provider signs nothing more on the old offer.
            self.kv.put(CANCELLED, old.as_slice(), &now)?;
            if let Err(e) = self.solver.cancel_offer(&self.signer, old, OfferKind::Resource).await {
                tracing::debug!(offer = %old, error = %e, "old offer not cancelled (matched or expired)");
            }
        }
        Ok(())
    }

    /// The solver closed `offer` (its owner's escrow fell short, or it was cancelled): if it
    /// is the current one, the next tick posts a fresh offer, topping the escrow up first.
    pub(super) fn offer_closed(&self, offer: B256) {
        let mut current = self.current_offer.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_some_and(|(id, _)| id == offer) {
            tracing::warn!(%offer, "the solver closed this provider's offer; posting a fresh one");
            *current = None;
        }
    }

    /// Decides on a deal event: signs a proposal that passes every check and returns the
    /// new record to drive; re-signs one already signed whose signature the solver lost.
    /// Only a store failure is an error.
    pub(super) async fn consider(&self, deal: DealRecord) -> Result<Option<JobRecord>, ProviderError> {
        if deal.deal.provider != self.me() || deal.state != DealStatus::Proposed {
            return Ok(None);
        }
        let id = deal.id;
        if let Some(job) = self.kv.get::<JobRecord>(JOBS, id.as_slice())? {
            if job.stage == Stage::Signed {
                let _ = self.solver.sign_deal(&self.signer, id).await;
            }
            return Ok(None);
        }
        let (spec, prepared, since_block) = match self.check_proposal(&deal).await {
            Ok(checked) => checked,
            Err(why) => {
                tracing::warn!(deal = %id, reason = %why, "proposed deal refused: not signed");
                // Said to the solver, so the job creator learns why and the slot is free now.
                if let Err(e) = self.solver.refuse_deal(&self.signer, id, &why.to_string()).await {
                    tracing::debug!(deal = %id, error = %e, "cannot tell the solver the refusal");
                }
                return Ok(None);
            }
        };
        let mut job = JobRecord::signed(deal, spec, now_secs(), Some(prepared.image_id));
        // Read before signing, before the deal can exist: its events come after this block.
        job.since_block = since_block;
        // The record comes first: a signature the provider does not remember would let a
        // deal be created that nobody runs.
        if let Err(e) = self.save(&job) {
            self.release(&id);
            return Err(e.into());
        }
        match self.solver.sign_deal(&self.signer, id).await {
            Ok(_) => {
                tracing::info!(deal = %id, module = %job.spec.module.name, job_creator = %job.deal.deal.jobCreator, "deal signed: waiting for it on chain")
            }
            Err(e) => {
                tracing::warn!(deal = %id, error = %e, "signing at the solver failed; the deal is watched anyway")
            }
        }
        Ok(Some(job))
    }

    /// Checks a proposal against this provider's offer, terms and free capacity; reserves a
    /// slot if it passes.
    async fn check_proposal(&self, deal: &DealRecord) -> Result<(JobSpec, Prepared, u64), Refusal> {
        if !terms::id_matches(&deal.deal, deal.id, &self.deals_domain) {
            return Err(Refusal::IdMismatch);
        }
        let unknown = Refusal::UnknownOffer(deal.resource_offer);
        if self.kv.get::<u64>(CANCELLED, deal.resource_offer.as_slice()).ok().flatten().is_some() {
            return Err(unknown);
        }
        let offer: SignedResourceOffer =
            self.kv.get(OFFERS, deal.resource_offer.as_slice()).ok().flatten().ok_or(unknown)?;
        let job = match self.solver.offer(deal.job_offer, OfferKind::Job).await {
            Ok(OfferRecord::Job(j)) => j,
            Ok(OfferRecord::Resource(_)) => return Err(Refusal::JobOfferUnavailable("it is a resource offer".into())),
            Err(e) => return Err(Refusal::JobOfferUnavailable(e.to_string())),
        };
        // The job creator's mediators come from its own signed offer, not the solver's word.
        let signed = &job.signed;
        let digest = signed.id(&self.solver.info().domain());
        if signed.offer.jobCreator != deal.deal.jobCreator
            || crate::protocol::check_signer(&digest, &signed.signature, signed.offer.jobCreator).is_err()
        {
            return Err(Refusal::JobOfferUnavailable("the job offer is not the job creator's".into()));
        }
        let spec = job.signed.spec.clone();
        let now = self.chain.now().await.map_err(|e| Refusal::ChainUnavailable(e.to_string()))?;
        let since_block = self.chain.block_number().await.map_err(|e| Refusal::ChainUnavailable(e.to_string()))?;
        let solver = self.solver.info().solver;
        terms::check(&deal.deal, &spec, &offer.offer, &signed.offer.mediators, solver, &self.cfg.limits, now)?;
        // With an allow-list, the job must be exactly what this machine's copy of the module
        // makes of its inputs: a stranger's spec cannot swap the image or the command under
        // an allowed name.
        if !self.cfg.modules.is_empty() {
            let module =
                self.cfg.resolver.resolve_named(&spec.module.name).map_err(|e| Refusal::Module(e.to_string()))?;
            module.admits(&spec).map_err(Refusal::Module)?;
        }
        let prepared = self.executor.prepare(&spec).await.map_err(|e| Refusal::Unrunnable(e.to_string()))?;
        self.reserve_slot(deal.id).await?;
        // Collateral for every signature that can still become a deal, and this one.
        let lag = crate::protocol::CREATE_LAG_SECS;
        let waiting = self
            .kv
            .all::<JobRecord>(JOBS)
            .map(|j| j.iter().filter(|j| j.stage == Stage::Signed && j.deal.deal.createDeadline + lag >= now).count());
        let need = self.cfg.collateral * U256::from(waiting.unwrap_or(0) + 1);
        if let Err(e) = self.chain.ensure_free_escrow(need).await {
            self.release(&deal.id);
            return Err(Refusal::Escrow(e.to_string()));
        }
        Ok((spec, prepared, since_block))
    }

    /// Takes a slot for `id`. The solver frees a slot when it sees a deal end on chain; this
    /// provider may see it a moment later, so a finishing deal gets a few seconds: the
    /// proposal takes the slot as soon as the deal lets it go.
    async fn reserve_slot(&self, id: B256) -> Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + SLOT_WAIT;
        loop {
            // Registered before looking, so a slot freed in between is not missed.
            let freed = self.slot_freed.notified();
            {
                let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
                if active.len() < self.cfg.slots as usize {
                    active.insert(id);
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(Refusal::Busy(self.cfg.slots));
            }
        }
    }
}
