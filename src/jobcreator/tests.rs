//! The job creator with fakes of the chain and the solver. Placing: a signed deal that
//! cannot be created by its provider's doing costs nothing and is reported (THREATS N3).
//! Following a created deal: every deadline it claims, accept or challenge by the bundle
//! check, and a local failure that stops without challenging.

use super::{JobCreator, JobCreatorError, JobTerms, LogProgress};
use crate::chain::{DealState, DealsChain, ProviderFault};
use crate::protocol::client::SolverApi;
use crate::protocol::records::{CreatedDeal, DealRecord, DealStatus};
use crate::testing::*;
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Rig {
    chain: Arc<FakeChain>,
    solver: Arc<FakeSolver>,
    creator: JobCreator,
    created: CreatedDeal,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Self {
        let key = PrivateKeySigner::random();
        let chain = Arc::new(FakeChain::new(key.address()));
        let solver = Arc::new(FakeSolver::new());
        let dir = tempfile::tempdir().unwrap();
        let terms = terms(key.address(), Address::repeat_byte(0xa0), &spec("moo"), 1);
        chain.create(&terms);
        let created = CreatedDeal {
            deal: record_of(terms, DealStatus::Created),
            spec: spec("moo"),
            create_tx: B256::ZERO,
            created_block: 0,
        };
        let creator = JobCreator {
            terms: JobTerms {
                max_price: U256::from(100),
                mediation_fee: U256::from(1),
                audit_fee: U256::from(1),
                audit_ppm: 100_000,
                match_timeout: Duration::from_secs(5),
                result_margin_secs: 60,
                judge_timeout_secs: 100,
                mediation_timeout_secs: 100,
                poll: Duration::from_millis(5),
            },
            mediators: vec![MEDIATOR],
            results_dir: dir.path().join("results"),
            signer: key,
            chain: chain.clone(),
            solver: solver.clone(),
            token: CancellationToken::new(),
            follow_audits: false,
        };
        Self { chain, solver, creator, created, dir }
    }

    fn id(&self) -> B256 {
        self.created.deal.id
    }

    /// The provider delivers `spec`'s honest bundle, with `on_chain` as its result hash
    /// (the honest one when `None`).
    fn deliver(&self, on_chain: Option<B256>) -> B256 {
        let out = self.dir.path().join("provider");
        std::fs::create_dir_all(out.join("outputs")).unwrap();
        let path = out.join("bundle.tar");
        let honest = crate::bundle::write_bundle(&fake_results(&spec("moo"), &out.join("outputs")), &path).unwrap();
        self.solver.put_result(self.id(), std::fs::read(&path).unwrap());
        self.chain.put(self.id(), DealState::ResultSubmitted, 1_100, on_chain.unwrap_or(honest));
        honest
    }

    async fn finish(&self, challenge: bool) -> Result<super::Outcome, JobCreatorError> {
        self.creator.finish(&self.created, challenge, &LogProgress).await
    }
}

#[tokio::test]
async fn a_bundle_that_matches_the_chain_is_accepted_and_kept() {
    let rig = Rig::new();
    rig.deliver(None);
    let outcome = rig.finish(false).await.unwrap();
    assert_eq!(outcome.state, DealState::Accepted);
    assert_eq!(outcome.stdout, b"cowsay moo\n");
    let dir: PathBuf = outcome.dir.unwrap();
    assert_eq!(std::fs::read(dir.join("stdout")).unwrap(), b"cowsay moo\n");
    assert!(dir.join("bundle.tar").exists());
    assert_eq!(rig.chain.count(|t| *t == Tx::Accept(rig.id())), 1);
}

#[tokio::test]
async fn a_bundle_that_does_not_match_is_challenged_and_the_verdict_awaited() {
    let rig = Rig::new();
    rig.deliver(Some(B256::repeat_byte(9)));
    let chain = rig.chain.clone();
    let id = rig.id();
    let verdict = tokio::spawn(async move {
        while chain.view(id).state != DealState::Challenged {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        chain.put(id, DealState::MediatedDishonest, 0, B256::repeat_byte(9));
    });
    let outcome = rig.finish(false).await.unwrap();
    verdict.await.unwrap();
    assert_eq!(outcome.state, DealState::MediatedDishonest);
    assert!(outcome.summary.starts_with("challenged because the bundle's result hash"), "{}", outcome.summary);
    assert_eq!(rig.chain.count(|t| *t == Tx::Challenge(id)), 1);
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Accept(_))), 0);
}

#[tokio::test]
async fn a_local_failure_stops_and_never_challenges() {
    let mut rig = Rig::new();
    rig.deliver(Some(B256::repeat_byte(9)));
    // The results directory cannot be made: a file is in the way.
    let blocked = rig.dir.path().join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    rig.creator.results_dir = blocked.join("results");
    let err = rig.finish(false).await.unwrap_err();
    assert!(matches!(err, JobCreatorError::Local { .. }), "{err}");
    assert!(err.to_string().contains("nothing was challenged"), "{err}");
    assert!(rig.chain.txs().is_empty(), "no challenge for a problem on this machine: {:?}", rig.chain.txs());
}

#[tokio::test]
async fn no_result_by_the_deadline_claims_the_refund() {
    let rig = Rig::new();
    rig.chain.set_now(rig.chain.view(rig.id()).deadline + 1);
    let outcome = rig.finish(false).await.unwrap();
    assert_eq!(outcome.state, DealState::TimedOutNoResult);
    assert!(outcome.summary.contains("refunded"), "{}", outcome.summary);
    assert_eq!(rig.chain.count(|t| *t == Tx::Timeout(rig.id())), 1);
}

#[tokio::test]
async fn no_verdict_by_the_deadline_claims_the_timeout() {
    let rig = Rig::new();
    rig.deliver(None);
    rig.chain.challenge(&rig.chain.dref(rig.id())).await.unwrap();
    rig.chain.set_now(rig.chain.view(rig.id()).deadline + 1);
    let outcome = rig.finish(true).await.unwrap();
    assert_eq!(outcome.state, DealState::TimedOutNoVerdict);
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Challenge(_))), 1, "the challenge before the restart, not another");
    assert_eq!(rig.chain.count(|t| *t == Tx::Timeout(rig.id())), 1);
}

#[tokio::test]
async fn a_missed_judge_deadline_settles_instead_of_hanging() {
    let rig = Rig::new();
    rig.deliver(None);
    rig.chain.set_now(1_101);
    let outcome = rig.finish(false).await.unwrap();
    assert_eq!(outcome.state, DealState::TimedOutAccepted);
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Accept(_))), 0);
}

#[tokio::test]
async fn a_cancelled_wait_says_so() {
    let rig = Rig::new();
    rig.creator.token.cancel();
    let err = rig.finish(false).await.unwrap_err();
    assert!(matches!(err, JobCreatorError::Interrupted), "{err}");
}

#[tokio::test]
async fn a_transaction_that_keeps_failing_is_given_up_not_retried_forever() {
    let rig = Rig::new();
    rig.deliver(None);
    rig.chain.fail_sends(1_000);
    let err = rig.finish(false).await.unwrap_err();
    assert!(matches!(err, JobCreatorError::Chain(_)), "{err}");
    assert!(rig.chain.txs().is_empty());
}

#[tokio::test]
async fn a_transaction_that_fails_once_is_sent_again() {
    let rig = Rig::new();
    rig.deliver(None);
    rig.chain.fail_sends(2);
    assert_eq!(rig.finish(false).await.unwrap().state, DealState::Accepted);
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Accept(_))), 1);
}

#[tokio::test]
async fn a_deal_that_vanished_from_the_chain_is_given_up() {
    let rig = Rig::new();
    rig.chain.put(rig.id(), DealState::None, 0, B256::ZERO);
    let chain = rig.chain.clone();
    let clock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        chain.advance(101);
    });
    let err = rig.finish(false).await.unwrap_err();
    clock.await.unwrap();
    assert!(matches!(err, JobCreatorError::Vanished { .. }), "{err}");
}

#[tokio::test]
async fn an_accepted_result_drawn_for_audit_ends_the_job_creators_part() {
    let rig = Rig::new();
    rig.deliver(None);
    rig.chain.audit_next();
    let outcome = rig.finish(false).await.unwrap();
    assert_eq!(outcome.state, DealState::Audited, "the auditor decides the provider's pay, not the job creator");
    assert_eq!(outcome.stdout, b"cowsay moo\n", "the verified output is the job creator's already");
    assert!(outcome.summary.contains("audit"), "{}", outcome.summary);
    assert_eq!(rig.chain.count(|t| *t == Tx::Accept(rig.id())), 1);
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Draw(_) | Tx::Timeout(_))), 0);
}

#[tokio::test]
async fn a_job_creator_that_follows_audits_waits_for_the_auditors_verdict() {
    let mut rig = Rig::new();
    rig.creator.follow_audits = true;
    rig.deliver(None);
    rig.chain.audit_next();
    let chain = rig.chain.clone();
    let id = rig.id();
    let verdict = tokio::spawn(async move {
        while chain.view(id).state != DealState::Audited {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        chain.put(id, DealState::MediatedDishonest, 0, B256::ZERO);
    });
    let outcome = rig.finish(false).await.unwrap();
    verdict.await.unwrap();
    assert_eq!(outcome.state, DealState::MediatedDishonest, "the audit found the result wrong: refunded");
}

/// A deal for the job offer `offer`, signed by `provider` (its signature as the solver
/// would hold it).
async fn signed_for(
    solver: &FakeSolver,
    offer: &crate::protocol::records::JobOfferRecord,
    provider: &PrivateKeySigner,
    n: u8,
) -> DealRecord {
    let o = &offer.signed.offer;
    let theirs = provider_offer(solver, provider, o.mediators.clone()).await;
    let mediators = crate::protocol::mediators_between(provider.address(), &o.mediators, o.jobCreator, &o.mediators);
    let deal = crate::chain::bindings::DcnDeals::Deal {
        jobCreator: o.jobCreator,
        provider: provider.address(),
        solver: o.solver,
        mediators,
        price: U256::from(10),
        collateral: U256::from(100),
        mediationFee: o.mediationFee,
        auditFee: o.auditFee,
        auditPpm: o.auditPpm,
        resultTimeout: o.resultTimeout,
        judgeTimeout: o.judgeTimeout,
        mediationTimeout: o.mediationTimeout,
        createDeadline: 1_500,
        jobHash: o.jobHash,
        nonce: U256::from(n),
    };
    let mut record = record_of(deal, DealStatus::Signed);
    record.job_offer = offer.id;
    record.resource_offer = theirs;
    record.provider_signature = Some(crate::protocol::sign_digest(provider, &record.id).await.unwrap());
    record
}

/// Posts `provider`'s signed resource offer trusting `mediators`; returns its id.
async fn provider_offer(solver: &FakeSolver, provider: &PrivateKeySigner, mediators: Vec<Address>) -> B256 {
    let offer = resource_offer(provider.address(), solver.info().solver, U256::from(100), mediators);
    let signed = crate::protocol::SignedResourceOffer::sign(offer, provider, &solver.info().domain()).await.unwrap();
    solver.post_resource_offer(&signed).await.unwrap().id
}

/// The same deal with its signature's v written as 0 or 1: it recovers to the provider,
/// and `DcnDeals` refuses it (THREATS N3).
fn with_low_v(mut deal: DealRecord) -> DealRecord {
    let mut sig = deal.provider_signature.unwrap().to_vec();
    sig[64] -= 27;
    deal.provider_signature = Some(sig.into());
    deal
}

/// Matches the job offer the job creator posts with `first`, made by `make` from it; the
/// solver confirms a report with `fault` and hands the job to `second` (a fresh provider's).
fn match_first(
    rig: &Rig,
    fault: Option<ProviderFault>,
    make: impl FnOnce(DealRecord) -> DealRecord + Send + 'static,
    first: PrivateKeySigner,
) -> tokio::task::JoinHandle<(DealRecord, DealRecord)> {
    rig.solver.events_down();
    let solver = rig.solver.clone();
    tokio::spawn(async move {
        let offer = loop {
            if let Some(o) = solver.job_offers().pop() {
                break o;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let bad = make(signed_for(&solver, &offer, &first, 1).await);
        let good = signed_for(&solver, &offer, &PrivateKeySigner::random(), 2).await;
        solver.confirm_reports(fault, Some(good.clone()));
        solver.propose(offer.id, bad.clone());
        (bad, good)
    })
}

/// The deposit `match_deal` makes before posting its offer: the price and the fees.
fn offer_deposit(rig: &Rig) -> Tx {
    let t = &rig.creator.terms;
    Tx::Deposit(t.max_price + t.audit_fee + t.mediation_fee)
}

#[tokio::test]
async fn a_signature_the_contract_refuses_costs_nothing_and_the_job_goes_to_another_provider() {
    let rig = Rig::new();
    let first = PrivateKeySigner::random();
    let proposals = match_first(&rig, Some(ProviderFault::BadSignature), with_low_v, first);
    let deal = rig.creator.match_deal(&spec("moo"), &LogProgress).await.unwrap();
    let (bad, good) = proposals.await.unwrap();
    assert_eq!(deal.id, good.id, "the next provider's deal");
    assert_eq!(rig.solver.reports(), vec![(bad.id, true)], "told the solver, still waiting for the job");
    assert_eq!(rig.chain.txs(), vec![offer_deposit(&rig)], "nothing sent for the refused signature");
    assert_eq!(rig.chain.checks(), 1, "the refused signature needed no chain read; the next deal one");
    rig.creator.create(deal, &spec("moo")).await.unwrap();
    assert_eq!(rig.chain.txs(), vec![offer_deposit(&rig), Tx::Create(good.id)]);
}

#[tokio::test]
async fn a_provider_short_of_escrow_is_found_before_anything_is_sent() {
    let rig = Rig::new();
    let first = PrivateKeySigner::random();
    rig.chain.set_escrow(first.address(), U256::from(99));
    let proposals = match_first(&rig, Some(ProviderFault::EscrowShort), |d| d, first);
    let deal = rig.creator.match_deal(&spec("moo"), &LogProgress).await.unwrap();
    let (bad, good) = proposals.await.unwrap();
    assert_eq!(deal.id, good.id);
    assert_eq!(rig.solver.reports(), vec![(bad.id, true)]);
    assert_eq!(rig.chain.txs(), vec![offer_deposit(&rig)]);
}

#[tokio::test]
async fn a_refused_signature_the_solver_does_not_confirm_is_given_up_unsent() {
    let rig = Rig::new();
    let proposals = match_first(&rig, None, with_low_v, PrivateKeySigner::random());
    let err = rig.creator.match_deal(&spec("moo"), &LogProgress).await.unwrap_err();
    let (bad, _) = proposals.await.unwrap();
    assert!(
        matches!(err, JobCreatorError::ProviderFault { deal, fault: ProviderFault::BadSignature, .. } if deal == bad.id),
        "{err}"
    );
    assert!(err.to_string().contains("Nothing was spent"), "{err}");
    assert_eq!(rig.chain.txs(), vec![offer_deposit(&rig)]);
}

#[tokio::test]
async fn create_sends_nothing_for_a_deal_its_provider_spoilt_and_tells_the_solver() {
    let rig = Rig::new();
    let offer = {
        rig.solver.put_job_offer(B256::repeat_byte(0x10), spec("moo"), &rig.creator.signer);
        rig.solver.job_offers().pop().unwrap()
    };
    // A signature the contract refuses: caught before the escrow top-up and createDeal.
    let bad = with_low_v(signed_for(&rig.solver, &offer, &PrivateKeySigner::random(), 1).await);
    let err = rig.creator.create(bad.clone(), &spec("moo")).await.unwrap_err();
    assert!(matches!(err, JobCreatorError::ProviderFault { fault: ProviderFault::BadSignature, .. }), "{err}");
    assert!(rig.chain.txs().is_empty(), "not even the escrow top-up: {:?}", rig.chain.txs());
    // A provider whose escrow went short after the match: createDeal reverts in its gas
    // estimate, so nothing but this job creator's own top-up (which stays its own) is sent.
    let short = PrivateKeySigner::random();
    rig.chain.set_escrow(short.address(), U256::ZERO);
    let spoilt = signed_for(&rig.solver, &offer, &short, 2).await;
    let err = rig.creator.create(spoilt.clone(), &spec("moo")).await.unwrap_err();
    assert!(matches!(err, JobCreatorError::ProviderFault { fault: ProviderFault::EscrowShort, .. }), "{err}");
    assert_eq!(rig.chain.txs(), vec![Tx::Deposit(U256::from(11))], "the price and the audit fee");
    assert_eq!(rig.solver.reports(), vec![(bad.id, false), (spoilt.id, false)], "no longer waiting for the job");
}

#[tokio::test]
async fn a_deal_naming_fewer_mediators_than_the_network_asks_is_refused_unsent() {
    let rig = Rig::new();
    let rules = rig.chain.rules().await.unwrap();
    rig.chain.set_rules(crate::chain::NetworkRules { min_mediators: 3, ..rules });
    rig.solver.events_down();
    let solver = rig.solver.clone();
    let proposal = tokio::spawn(async move {
        let offer = loop {
            if let Some(o) = solver.job_offers().pop() {
                break o;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let deal = signed_for(&solver, &offer, &PrivateKeySigner::random(), 1).await;
        solver.propose(offer.id, deal.clone());
        deal
    });
    let err = rig.creator.match_deal(&spec("moo"), &LogProgress).await.unwrap_err();
    let deal = proposal.await.unwrap();
    assert!(deal.deal.mediators.len() < 3, "the job offer trusts fewer than 3");
    assert!(
        matches!(&err, JobCreatorError::BadDeal { why: super::DealMismatch::Mediators(m), .. } if m.contains("at least 3")),
        "{err}"
    );
    assert_eq!(rig.chain.txs(), vec![offer_deposit(&rig)], "nothing but the offer's deposit");
}
