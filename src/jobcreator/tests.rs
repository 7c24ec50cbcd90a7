//! The job creator following a created deal, with fakes of the chain and the solver: every
//! deadline it claims, accept or challenge by the bundle check, and a local failure that
//! stops without challenging.

use super::{JobCreator, JobCreatorError, JobTerms, LogProgress};
use crate::chain::{DealState, DealsChain};
use crate::protocol::records::{CreatedDeal, DealStatus};
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
        let created =
            CreatedDeal {
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
