//! Placing a job: top up escrow, post the signed job offer, wait for a provider's signed
//! deal (events, with a polling fallback), check it against the offer, and create it on
//! chain. On no match the offer is cancelled and nothing is locked.
//!
//! A signed deal that cannot be created by its provider's doing (THREATS N3: a signature
//! the contract refuses, the provider's escrow short, the deal cancelled) costs nothing: it
//! is found before any transaction, by the contract's signature rule
//! ([`check_canonical`]) and a call of `createDeal` that sends nothing
//! (`DealsChain::check_create`), and reported to the solver, which checks it itself,
//! strikes the provider and offers the job to another; the wait goes on.

use super::{DealMismatch, JobCreator, JobCreatorError, Progress, Step};
use crate::chain::deals::{deal_id, domain};
use crate::chain::{ChainError, CreateCheck, ProviderFault};
use crate::clock::now_secs;
use crate::protocol::records::{CreatedDeal, DealRecord, DealStatus, EventKind, OfferRecord, OfferStatus};
use crate::protocol::{check_canonical, check_signer, ClientError, EventStream, JobOffer, OfferKind, SignedJobOffer};
use crate::types::JobSpec;
use crate::units::format_amount;
use alloy::primitives::{B256, U256};
use std::time::{Duration, Instant};

impl JobCreator {
    /// Posts the job offer for `spec`, waits for a provider's signed deal and creates it
    /// on chain.
    pub async fn place(&self, spec: &JobSpec, progress: &dyn Progress) -> Result<CreatedDeal, JobCreatorError> {
        let deal = self.match_deal(spec, progress).await?;
        self.create(deal, spec).await
    }

    /// Posts the job offer for `spec` and waits for a provider's signed deal, checked
    /// against the offer; nothing is on chain yet (the caller may record it first).
    pub async fn match_deal(&self, spec: &JobSpec, progress: &dyn Progress) -> Result<DealRecord, JobCreatorError> {
        let t = &self.terms;
        // The price and the audit fee are locked at creation; a challenge takes the fee.
        let need = t.max_price + t.audit_fee + t.mediation_fee;
        let deposited = self.chain.ensure_free_escrow(need).await?;
        if !deposited.is_zero() {
            tracing::info!(amount = %format_amount(deposited), "deposited into escrow");
        }
        let info = self.solver.info();
        let offer = JobOffer {
            jobCreator: self.me(),
            solver: info.solver,
            jobHash: spec.content_hash(),
            maxPrice: t.max_price,
            mediationFee: t.mediation_fee,
            auditFee: t.audit_fee,
            auditPpm: t.audit_ppm,
            mediators: self.mediators.clone(),
            resultTimeout: spec.timeout_secs + t.result_margin_secs,
            judgeTimeout: t.judge_timeout_secs,
            mediationTimeout: t.mediation_timeout_secs,
            expiry: now_secs() + t.match_timeout.as_secs().max(1),
            nonce: U256::from_be_bytes(B256::random().0),
        };
        let signed = SignedJobOffer::sign(offer, spec.clone(), &self.signer, &info.domain()).await?;
        let record = match self.solver.post_job_offer(&signed).await {
            // The solver takes a job offer only while the free escrow covers its maximum
            // price (THREATS V2). Another job of this account may have locked the deposit
            // since: top up again, once (the refused offer's nonce is unused).
            Err(ClientError::Refused { code, .. }) if code == "escrow_short" => {
                let deposited = self.chain.ensure_free_escrow(need).await?;
                tracing::info!(amount = %format_amount(deposited), "the solver found the escrow short; topped up");
                self.solver.post_job_offer(&signed).await?
            }
            r => r?,
        };
        let offer_id = record.id;
        progress.step(
            Step::Matching,
            &format!(
                "job offer {offer_id} posted for up to {} DCN; waiting for a provider",
                format_amount(t.max_price)
            ),
        );
        let mut refused = None;
        let waited = self.await_signed_deal(offer_id, record.seq.saturating_sub(1), &signed.offer, &mut refused).await;
        let deal = match waited {
            Ok(Some(d)) => d,
            Ok(None) | Err(JobCreatorError::Interrupted) => {
                let cancelled = self.solver.cancel_offer(&self.signer, offer_id, OfferKind::Job).await.is_ok();
                waited?;
                return Err(JobCreatorError::NoMatch {
                    secs: t.match_timeout.as_secs(),
                    module: spec.module.name.clone(),
                    max_price: format_amount(t.max_price),
                    cancelled,
                    refused,
                });
            }
            Err(e) => return Err(e),
        };
        progress.step(
            Step::DealOnChain,
            &format!(
                "provider {} signed deal {} for {} DCN",
                deal.deal.provider,
                deal.id,
                format_amount(deal.deal.price)
            ),
        );
        Ok(deal)
    }

    /// Creates the signed `deal` for `spec` on chain. One that cannot be created by its
    /// provider's doing costs nothing: a signature the contract refuses is caught before any
    /// transaction, and a revert of `createDeal` in its gas estimate sends none (a provider
    /// may change its escrow or cancel after [`JobCreator::match_deal`] looked); the solver
    /// is told, without asking it to offer the job again (this job creator gives up on it).
    pub async fn create(&self, deal: DealRecord, spec: &JobSpec) -> Result<CreatedDeal, JobCreatorError> {
        let sig = deal
            .provider_signature
            .clone()
            .ok_or(JobCreatorError::BadDeal { deal: deal.id, why: DealMismatch::Signature("missing".into()) })?;
        let fault = match check_canonical(&sig) {
            Err(_) => ProviderFault::BadSignature,
            Ok(()) => match self.chain.create_deal(&deal.deal, sig).await {
                Ok(sent) => {
                    return Ok(CreatedDeal { deal, spec: spec.clone(), create_tx: sent.tx, created_block: sent.block })
                }
                Err(ChainError::ProviderFault(fault)) => fault,
                Err(e) => return Err(e.into()),
            },
        };
        self.report(&deal, fault, false).await;
        Err(JobCreatorError::ProviderFault { deal: deal.id, provider: deal.deal.provider, fault })
    }

    /// Tells the solver that signed `deal` cannot be created by its provider's doing
    /// (`fault`, as found here); `rematch`: this job creator still waits for the job.
    /// Whether the solver found so too (it then struck the provider).
    async fn report(&self, deal: &DealRecord, fault: ProviderFault, rematch: bool) -> bool {
        let (id, provider) = (deal.id, deal.deal.provider);
        match self.solver.report_failure(&self.signer, id, rematch).await {
            Ok(d) if d.fault.is_some() => {
                tracing::warn!(deal = %id, %provider, %fault, "the provider's signed deal cannot be created: the solver found so too and pauses the provider");
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(deal = %id, %provider, %fault, error = %e, "the provider's signed deal cannot be created, and the solver did not take the report");
                false
            }
        }
    }

    /// Whether signed `deal` can be created as far as its provider goes: its signature is in
    /// the contract's form and the chain says `createDeal` would not revert by the
    /// provider's doing. One that would is reported to the solver, which checks it, strikes
    /// the provider and offers the job to another: the wait goes on (`false`). Where the
    /// solver does not agree, a deal the contract may still take is created anyway (the
    /// chain has the last word), and one whose signature it refuses is given up, unsent.
    async fn vet(&self, deal: &DealRecord) -> Result<bool, JobCreatorError> {
        let Some(sig) = deal.provider_signature.as_ref() else { return Ok(true) };
        let (fault, form) = match check_canonical(sig) {
            Err(e) => (ProviderFault::BadSignature, Some(e)),
            Ok(()) => match self.chain.check_create(&deal.deal, sig).await {
                Ok(CreateCheck::ProviderFault(fault)) => (fault, None),
                Ok(CreateCheck::Passes | CreateCheck::Fails(_)) => return Ok(true),
                Err(e) => {
                    tracing::debug!(deal = %deal.id, error = %e, "cannot ask the chain whether the deal can be created");
                    return Ok(true);
                }
            },
        };
        if self.report(deal, fault, true).await {
            return Ok(false);
        }
        match form {
            Some(_) => Err(JobCreatorError::ProviderFault { deal: deal.id, provider: deal.deal.provider, fault }),
            None => Ok(true),
        }
    }

    /// Checks the solver's deal against what was offered, and against the provider's own
    /// signed offer: the deal names every mediator both trust (at least the network's
    /// fewest), and a fake result would lose its provider money in expectation.
    async fn check_deal(&self, deal: &DealRecord, offer: &JobOffer) -> Result<(), DealMismatch> {
        let d = &deal.deal;
        let info = self.solver.info();
        if deal_id(d, &domain(info.chain_id, info.deals_contract)) != deal.id {
            return Err(DealMismatch::Id);
        }
        if d.jobCreator != self.me() || d.solver != offer.solver || d.jobHash != offer.jobHash {
            return Err(DealMismatch::Parties);
        }
        if d.price > offer.maxPrice || d.mediationFee != offer.mediationFee {
            return Err(DealMismatch::Price { price: d.price, max: offer.maxPrice });
        }
        if (d.auditFee, d.auditPpm) != (offer.auditFee, offer.auditPpm)
            || (d.resultTimeout, d.judgeTimeout, d.mediationTimeout)
                != (offer.resultTimeout, offer.judgeTimeout, offer.mediationTimeout)
        {
            return Err(DealMismatch::Terms);
        }
        if !crate::protocol::fake_loses(d.price, d.collateral, d.auditPpm) {
            return Err(DealMismatch::Deterrence { price: d.price, collateral: d.collateral, audit_ppm: d.auditPpm });
        }
        self.check_mediators(deal, offer).await?;
        let sig = deal.provider_signature.as_ref().ok_or(DealMismatch::Signature("missing".into()))?;
        check_signer(&deal.id, sig, d.provider)?;
        Ok(())
    }

    /// The deal names exactly the mediators both sides trust, and enough of them: the
    /// provider's list comes from its own signed resource offer at the solver.
    async fn check_mediators(&self, deal: &DealRecord, offer: &JobOffer) -> Result<(), DealMismatch> {
        let d = &deal.deal;
        let theirs = match self.solver.offer(deal.resource_offer, OfferKind::Resource).await {
            Ok(OfferRecord::Resource(r)) => r,
            Ok(_) | Err(_) => return Err(DealMismatch::Mediators("the provider's offer cannot be read".into())),
        };
        let r = &theirs.signed;
        let digest = r.id(&self.solver.info().domain());
        if r.offer.provider != d.provider || check_signer(&digest, &r.signature, d.provider).is_err() {
            return Err(DealMismatch::Mediators("the provider's offer is not the provider's".into()));
        }
        let both = crate::protocol::mediators_between(d.provider, &r.offer.mediators, self.me(), &offer.mediators);
        if d.mediators != both {
            return Err(DealMismatch::Mediators(format!(
                "the deal names {} of the {} mediators both sides trust",
                d.mediators.len(),
                both.len()
            )));
        }
        let min = self.chain.rules().await.map_err(|e| DealMismatch::Mediators(e.to_string()))?.min_mediators;
        if d.mediators.len() < usize::from(min) {
            return Err(DealMismatch::Mediators(format!(
                "it names {} mediators; the network asks at least {min}",
                d.mediators.len()
            )));
        }
        Ok(())
    }

    /// The deal if it is signed and holds up; a provider's refusal goes into `refused`.
    async fn accept_signed(
        &self,
        deal: DealRecord,
        offer: &JobOffer,
        refused: &mut Option<String>,
    ) -> Result<Option<DealRecord>, JobCreatorError> {
        let why = match (&deal.refusal, deal.fault) {
            (Some(why), _) => Some(format!("refused it: {}", why.escape_debug())),
            (None, Some(fault)) => Some(format!("signed it, but it could not be created: {fault}")),
            (None, None) => None,
        };
        if let Some(why) = why {
            let sentence = format!("Provider {} {why}", deal.deal.provider);
            if refused.as_ref() != Some(&sentence) {
                tracing::warn!("{sentence}");
            }
            *refused = Some(sentence);
        }
        if deal.state != DealStatus::Signed {
            return Ok(None);
        }
        match self.check_deal(&deal, offer).await {
            Ok(()) => Ok(Some(deal)),
            Err(why) => Err(JobCreatorError::BadDeal { deal: deal.id, why }),
        }
    }

    /// Waits for a signed deal on `offer_id`; `None` when the offer expired unmatched, with
    /// the last provider refusal seen in `refused`.
    async fn await_signed_deal(
        &self,
        offer_id: B256,
        since: u64,
        offer: &JobOffer,
        refused: &mut Option<String>,
    ) -> Result<Option<DealRecord>, JobCreatorError> {
        let deadline = Instant::now() + self.terms.match_timeout + Duration::from_secs(2);
        let mut events: Option<EventStream> = self.solver.events(self.me(), since).await.ok();
        let mut last_check = Instant::now();
        loop {
            if Instant::now() > deadline {
                return Ok(None);
            }
            let candidate = match events.as_mut() {
                Some(stream) => tokio::select! {
                    _ = self.token.cancelled() => return Err(JobCreatorError::Interrupted),
                    next = tokio::time::timeout(Duration::from_secs(1), stream.next()) => match next {
                        Ok(Some(Ok(ev))) => match ev.kind {
                            EventKind::Deal { deal } if deal.job_offer == offer_id => Some(*deal),
                            _ => None,
                        },
                        Ok(Some(Err(_))) | Ok(None) => {
                            events = None;
                            None
                        }
                        Err(_) => None,
                    },
                },
                None => {
                    self.pause(self.terms.poll).await?;
                    None
                }
            };
            if let Some(deal) = candidate {
                if let Some(d) = self.accept_signed(deal, offer, refused).await? {
                    if self.vet(&d).await? {
                        return Ok(Some(d));
                    }
                }
                continue;
            }
            // Without a live event stream, or now and then, ask directly.
            if events.is_none() || last_check.elapsed() > Duration::from_secs(3) {
                last_check = Instant::now();
                match self.solver.offer(offer_id, OfferKind::Job).await {
                    Ok(OfferRecord::Job(j)) => {
                        if let Some(id) = j.deal {
                            if let Ok(d) = self.solver.deal(id).await {
                                if let Some(d) = self.accept_signed(d, offer, refused).await? {
                                    if self.vet(&d).await? {
                                        return Ok(Some(d));
                                    }
                                }
                            }
                        }
                        if matches!(j.status, OfferStatus::Expired | OfferStatus::Cancelled | OfferStatus::Closed) {
                            return Ok(None);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "cannot read the job offer"),
                }
            }
        }
    }
}
