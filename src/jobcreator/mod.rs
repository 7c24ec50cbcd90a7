//! The job creator's side of a deal, used by `dcn run` and the job board service: post a
//! job offer, wait for the match, create the deal on chain with the provider's signature
//! ([`JobCreator::place`]); then wait for the result, download and verify the bundle
//! against the hash on chain, accept or challenge, and settle by `timeout` when the
//! provider never delivers ([`JobCreator::finish`]). Each step is reported through a
//! [`Progress`] callback.

use crate::bundle;
use crate::chain::bindings::DcnDeals;
use crate::chain::escrow::{chain_now, deal_info, ensure_free_escrow};
use crate::chain::units::format_amount;
use crate::chain::{ChainClient, Contracts};
use crate::protocol::{JobOffer, SignedJobOffer};
use crate::solver::client::{now_secs, ClientError, SolverClient};
use crate::solver::records::{DealRecord, DealState, EventKind, OfferRecord, OfferStatus};
use crate::types::JobSpec;
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The terms a job creator offers.
#[derive(Debug, Clone)]
pub struct JobTerms {
    /// Most it pays.
    pub max_price: U256,
    /// Fee for a mediator on a challenge.
    pub mediation_fee: U256,
    /// Trusted mediators.
    pub mediators: Vec<Address>,
    /// How long to wait for a provider.
    pub match_timeout: Duration,
    /// Seconds over the job's own timeout the provider has to deliver.
    pub result_margin_secs: u64,
    /// Seconds to judge a result.
    pub judge_timeout_secs: u64,
    /// Seconds for the mediator.
    pub mediation_timeout_secs: u64,
    /// How often the chain is read.
    pub poll: Duration,
}

/// A step of a job, reported when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The offer is posted; waiting for a provider.
    Matching,
    /// Creating the deal on chain.
    DealOnChain,
    /// The provider is running the job.
    Running,
    /// The result hash is on chain; downloading the bundle.
    ResultSubmitted,
    /// The bundle is downloaded and verified.
    Downloaded,
    /// Accepting the result on chain.
    Accepting,
    /// Challenging the result on chain.
    Challenging,
    /// Waiting for the mediator's verdict.
    AwaitingVerdict,
    /// Settling by `timeout` after a missed deadline.
    TimingOut,
}

impl Step {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Matching => "matching",
            Self::DealOnChain => "deal on chain",
            Self::Running => "running",
            Self::ResultSubmitted => "result submitted",
            Self::Downloaded => "downloaded",
            Self::Accepting => "accepted",
            Self::Challenging => "challenged",
            Self::AwaitingVerdict => "verdict",
            Self::TimingOut => "timed out",
        }
    }
}

/// Receives the steps as they begin, with a detail line.
pub trait Progress: Send + Sync {
    /// `step` begins.
    fn step(&self, step: Step, detail: &str);
}

/// A progress sink that only logs.
#[derive(Debug, Default)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn step(&self, step: Step, detail: &str) {
        tracing::info!(step = step.label(), "{detail}");
    }
}

/// A deal created on chain: what [`JobCreator::finish`] continues from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    /// The deal as matched.
    pub deal: DealRecord,
    /// The job.
    pub spec: JobSpec,
    /// The `createDeal` transaction.
    pub create_tx: B256,
}

/// How a job ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The deal id.
    pub deal_id: B256,
    /// The provider.
    pub provider: Address,
    /// The price paid (token units).
    pub price: U256,
    /// The final deal state.
    pub state: String,
    /// The result hash on chain (zero if none came).
    pub result_hash: B256,
    /// Transactions sent, by what they did.
    pub txs: Vec<(String, B256)>,
    /// The results directory, if a bundle was downloaded.
    pub dir: Option<PathBuf>,
    /// The job's exit code, if known.
    pub exit_code: Option<i64>,
    /// Its stdout, if known.
    #[serde(skip)]
    pub stdout: Vec<u8>,
    /// A sentence on what happened, for the user.
    pub summary: String,
}

/// A job creator account at a solver.
pub struct JobCreator {
    /// The chain connection.
    pub chain: ChainClient,
    /// The same key, for off-chain signatures.
    pub signer: PrivateKeySigner,
    /// The contracts.
    pub contracts: Contracts,
    /// The solver.
    pub solver: SolverClient,
    /// The terms offered.
    pub terms: JobTerms,
    /// Where results go (`<dir>/<deal id>/`).
    pub results_dir: PathBuf,
}

impl JobCreator {
    fn me(&self) -> Address {
        self.chain.from
    }

    /// Posts the job offer for `spec`, waits for a provider's signed deal and creates it
    /// on chain. On no match the offer is cancelled and nothing is locked.
    pub async fn place(&self, spec: &JobSpec, progress: &dyn Progress) -> eyre::Result<Created> {
        let t = &self.terms;
        let need = t.max_price + t.mediation_fee;
        let deposited = ensure_free_escrow(&self.chain, &self.contracts, need).await?;
        if !deposited.is_zero() {
            tracing::info!(amount = %format_amount(deposited), "deposited into escrow");
        }
        let job_hash = spec.content_hash();
        let offer = JobOffer {
            jobCreator: self.me(),
            solver: self.solver.info.solver,
            jobHash: job_hash,
            maxPrice: t.max_price,
            mediationFee: t.mediation_fee,
            mediators: t.mediators.clone(),
            resultTimeout: spec.timeout_secs + t.result_margin_secs,
            judgeTimeout: t.judge_timeout_secs,
            mediationTimeout: t.mediation_timeout_secs,
            expiry: now_secs() + t.match_timeout.as_secs().max(1),
            nonce: U256::from_be_bytes(B256::random().0),
        };
        let signed = SignedJobOffer::sign(offer, spec.clone(), &self.signer, &self.solver.domain()).await?;
        let record = self.solver.post_job_offer(&signed).await?;
        let offer_id = record.id;
        progress.step(
            Step::Matching,
            &format!(
                "job offer {offer_id} posted for up to {} DCN; waiting for a provider",
                format_amount(t.max_price)
            ),
        );
        let deal = match self.await_signed_deal(offer_id, record.seq.saturating_sub(1), &signed.offer).await? {
            Some(d) => d,
            None => {
                let cancelled = self.solver.cancel_offer(&self.signer, offer_id, false).await.is_ok();
                eyre::bail!(
                    "no provider took the job within {} s{}; nothing was locked. Is a provider running (`dcn provider`, or \
                     `dcn dev`)? Check that one offers module `{}`, enough resources and a price up to {} DCN (--max-price)",
                    t.match_timeout.as_secs(),
                    if cancelled { " (offer cancelled)" } else { "" },
                    spec.module.name,
                    format_amount(t.max_price)
                );
            }
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
        let sig = deal.provider_signature.clone().ok_or_else(|| eyre::eyre!("the signed deal has no signature"))?;
        let deals = DcnDeals::new(self.contracts.deals, &self.chain.provider);
        let receipt = self.chain.send("creating the deal", deals.createDeal(deal.deal.clone(), sig)).await?;
        Ok(Created { deal, spec: spec.clone(), create_tx: receipt.transaction_hash })
    }

    /// Checks the solver's deal against what was offered.
    fn check_deal(&self, deal: &DealRecord, offer: &JobOffer) -> Result<(), String> {
        let d = &deal.deal;
        let domain = crate::chain::deals::domain(self.chain.network.chain_id, self.contracts.deals);
        if crate::chain::deals::deal_id(d, &domain) != deal.id {
            return Err("its id is not the hash of its terms".into());
        }
        if d.jobCreator != self.me() || d.solver != offer.solver || d.jobHash != offer.jobHash {
            return Err("it names another job creator, solver or job".into());
        }
        if d.price > offer.maxPrice || d.mediationFee != offer.mediationFee {
            return Err(format!("price {} is over the maximum {}", d.price, offer.maxPrice));
        }
        if d.mediators.iter().any(|m| !offer.mediators.contains(m))
            || (d.resultTimeout, d.judgeTimeout, d.mediationTimeout)
                != (offer.resultTimeout, offer.judgeTimeout, offer.mediationTimeout)
        {
            return Err("its mediators or timeouts differ from the offer's".into());
        }
        let sig = deal.provider_signature.as_ref().ok_or("it is not signed")?;
        crate::protocol::check_signer(&deal.id, sig, d.provider).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Waits for a signed deal on `offer_id`; `None` when the offer expired unmatched.
    async fn await_signed_deal(
        &self,
        offer_id: B256,
        since: u64,
        offer: &JobOffer,
    ) -> eyre::Result<Option<DealRecord>> {
        let deadline = Instant::now() + self.terms.match_timeout + Duration::from_secs(2);
        let mut events = self.solver.events(self.me(), since).await.ok();
        let mut last_check = Instant::now();
        loop {
            if Instant::now() > deadline {
                return Ok(None);
            }
            let wait = Duration::from_secs(1);
            let candidate = match events.as_mut() {
                Some(stream) => match tokio::time::timeout(wait, stream.next()).await {
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
                None => {
                    tokio::time::sleep(self.terms.poll).await;
                    None
                }
            };
            if let Some(deal) = candidate {
                if deal.state == DealState::Signed {
                    match self.check_deal(&deal, offer) {
                        Ok(()) => return Ok(Some(deal)),
                        Err(why) => eyre::bail!("the solver's deal {} is not what was offered: {why}", deal.id),
                    }
                }
                continue;
            }
            // Without a live event stream, or now and then, ask directly.
            if events.is_none() || last_check.elapsed() > Duration::from_secs(3) {
                last_check = Instant::now();
                match self.solver.offer(offer_id, false).await {
                    Ok(OfferRecord::Job(j)) => {
                        if let Some(id) = j.deal {
                            if let Ok(d) = self.solver.deal(id).await {
                                if d.state == DealState::Signed {
                                    self.check_deal(&d, offer).map_err(|why| {
                                        eyre::eyre!("the solver's deal {} is not what was offered: {why}", d.id)
                                    })?;
                                    return Ok(Some(d));
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

    /// Waits for the result of a created deal, downloads and verifies it, then accepts (or
    /// challenges when `challenge`, or when the bundle does not match the chain) and waits
    /// for the verdict; calls `timeout` when the provider misses its deadline.
    pub async fn finish(&self, created: &Created, challenge: bool, progress: &dyn Progress) -> eyre::Result<Outcome> {
        let id = created.deal.id;
        let d = &created.deal.deal;
        let deals = DcnDeals::new(self.contracts.deals, &self.chain.provider);
        let mut outcome = Outcome {
            deal_id: id,
            provider: d.provider,
            price: d.price,
            state: String::new(),
            result_hash: B256::ZERO,
            txs: vec![("create".into(), created.create_tx)],
            dir: None,
            exit_code: None,
            stdout: vec![],
            summary: String::new(),
        };
        let info = deal_info(&self.chain, &self.contracts, id).await?;
        if info.state == 1 {
            progress.step(Step::Running, &format!("deal {id} is on chain; provider {} is running the job", d.provider));
        }
        // Wait for the result (or the result deadline).
        let info = loop {
            let info = deal_info(&self.chain, &self.contracts, id).await?;
            if info.state != 1 {
                break info;
            }
            if chain_now(&self.chain).await? > info.deadline {
                progress.step(Step::TimingOut, "the provider missed the result deadline; claiming the refund");
                let r = self.chain.send("settling the deal by timeout", deals.timeout(id)).await?;
                outcome.txs.push(("timeout".into(), r.transaction_hash));
                outcome.state = DealState::TimedOutNoResult.name().into();
                outcome.summary = format!(
                    "the provider delivered no result before the deadline: refunded {} DCN and awarded its {} DCN \
                     collateral (in escrow; `withdraw` to take it out)",
                    format_amount(d.price),
                    format_amount(d.collateral)
                );
                return Ok(outcome);
            }
            tokio::time::sleep(self.terms.poll).await;
        };
        if info.state != 2 {
            outcome.state = DealState::from_chain(info.state).map(|s| s.name()).unwrap_or("unknown").into();
            outcome.result_hash = info.resultHash;
            outcome.summary = format!("the deal is already {}", outcome.state);
            return Ok(outcome);
        }
        outcome.result_hash = info.resultHash;
        progress.step(Step::ResultSubmitted, &format!("result {} on chain; downloading the bundle", info.resultHash));

        let verified = self.download_and_verify(id, info.resultHash, info.deadline, &mut outcome).await;
        let mismatch = match &verified {
            Ok(()) => {
                progress.step(Step::Downloaded, &format!("bundle verified against the chain: {}", info.resultHash));
                None
            }
            Err(why) => Some(why.clone()),
        };
        if let Some(why) = &mismatch {
            tracing::warn!(deal = %id, "{why}: challenging");
        }
        if challenge || mismatch.is_some() {
            progress.step(
                Step::Challenging,
                &format!("challenging the result (mediation fee {} DCN)", format_amount(d.mediationFee)),
            );
            let r = self.chain.send("challenging the result", deals.challenge(id)).await?;
            outcome.txs.push(("challenge".into(), r.transaction_hash));
            let info = deal_info(&self.chain, &self.contracts, id).await?;
            progress.step(Step::AwaitingVerdict, &format!("mediator {} is re-running the job", info.mediator));
            let state = loop {
                let info = deal_info(&self.chain, &self.contracts, id).await?;
                if info.state >= 4 {
                    break info.state;
                }
                if chain_now(&self.chain).await? > info.deadline {
                    let r = self.chain.send("settling the challenge by timeout", deals.timeout(id)).await?;
                    outcome.txs.push(("timeout".into(), r.transaction_hash));
                    break 9;
                }
                tokio::time::sleep(self.terms.poll).await;
            };
            outcome.state = DealState::from_chain(state).map(|s| s.name()).unwrap_or("unknown").into();
            let because = match &mismatch {
                Some(why) => format!("challenged because {why}; "),
                None => String::new(),
            };
            outcome.summary = match state {
                5 => format!(
                    "{because}verdict: the provider was honest. It was paid {} DCN and the mediator's fee of {} DCN came from you",
                    format_amount(d.price),
                    format_amount(d.mediationFee)
                ),
                6 => format!(
                    "{because}verdict: the provider cheated. You got back {} DCN and its collateral minus the mediator's fee",
                    format_amount(d.price + d.mediationFee)
                ),
                _ => format!("{because}no verdict came before the mediation deadline: everyone got back what they locked"),
            };
            return Ok(outcome);
        }
        progress.step(Step::Accepting, "accepting the result");
        let r = self.chain.send("accepting the result", deals.acceptResult(id)).await?;
        outcome.txs.push(("accept".into(), r.transaction_hash));
        outcome.state = DealState::Accepted.name().into();
        outcome.summary = format!("accepted: provider {} was paid {} DCN", d.provider, format_amount(d.price));
        Ok(outcome)
    }

    /// Downloads the bundle into `<results>/<deal>/` and checks its result hash against
    /// `expected`. Retries while the solver does not have it yet, until a margin before
    /// the judge deadline. Errors are the reason to challenge.
    async fn download_and_verify(
        &self,
        id: B256,
        expected: B256,
        judge_deadline: u64,
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        let dir = self.results_dir.join(id.to_string());
        let part = self.results_dir.join(format!("{id}.tar.part"));
        std::fs::create_dir_all(&self.results_dir)
            .map_err(|e| format!("cannot create {}: {e}", self.results_dir.display()))?;
        // Leave a quarter of the judge window (at least 5 s) to challenge in.
        let now = now_secs();
        let window = judge_deadline.saturating_sub(now);
        let give_up = Instant::now() + Duration::from_secs(window.saturating_sub((window / 4).max(5)));
        loop {
            match self.solver.download_result(&self.signer, id, &part).await {
                Ok(_) => break,
                Err(ClientError::Refused { status: 404, .. }) | Err(ClientError::Unreachable { .. })
                    if Instant::now() < give_up =>
                {
                    tokio::time::sleep(self.terms.poll).await;
                }
                Err(e) => return Err(format!("the result bundle could not be downloaded ({e})")),
            }
        }
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let results = bundle::extract(&part, &dir, bundle::DEFAULT_MAX_BUNDLE_BYTES)
            .map_err(|e| format!("the result bundle is not valid ({e})"))?;
        let _ = std::fs::rename(&part, dir.join("bundle.tar"));
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.join(name), bytes).map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
        };
        write("stdout", &results.stdout)?;
        write("stderr", &results.stderr)?;
        write("exit_code", format!("{}\n", results.exit_code).as_bytes())?;
        outcome.dir = Some(dir.clone());
        outcome.exit_code = Some(results.exit_code);
        outcome.stdout = results.stdout.clone();
        let actual = bundle::result_hash(&results).map_err(|e| format!("cannot hash the bundle ({e})"))?;
        if actual != expected {
            return Err(format!("the bundle's result hash {actual} differs from the {expected} on chain"));
        }
        Ok(())
    }
}
