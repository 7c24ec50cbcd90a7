//! The mediator's handling of a challenge with fakes of the chain, the solver and the
//! executor: re-run and rule once (also across a restart), run twice before blaming, blame
//! nobody for a job that is not reproducible, abstain from a job it cannot run, refuse a
//! spec that is not the deal's, and stop at the deadline.

use super::case::{Closed, Mediation};
use super::service::{MediatorDeps, MediatorError, MediatorService};
use super::MediatorConfig;
use crate::chain::{DealState, DealsChain};
use crate::kv::KvStore;
use crate::protocol::records::DealStatus;
use crate::testing::*;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    chain: Arc<FakeChain>,
    solver: Arc<FakeSolver>,
    executor: Arc<FakeExecutor>,
    service: Arc<MediatorService>,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Self {
        Self::as_account(MEDIATOR)
    }

    /// A mediator service signing as `account`.
    fn as_account(account: Address) -> Self {
        let chain = Arc::new(FakeChain::new(account));
        let solver = Arc::new(FakeSolver::new());
        let executor = Arc::new(FakeExecutor::default());
        let dir = tempfile::tempdir().unwrap();
        let deps = MediatorDeps {
            account,
            chain: chain.clone(),
            logs: chain.clone(),
            deals_contract: DEALS,
            solver: solver.clone(),
            executor: executor.clone(),
            kv: KvStore::memory(),
        };
        let cfg = MediatorConfig { poll: Duration::from_millis(5), solver: None, fault: None };
        let service = MediatorService::new(cfg, dir.path().join("jobs"), deps);
        Self { chain, solver, executor, service, dir }
    }

    /// A challenged deal whose job the solver serves as `served`, with `provider_result`
    /// on chain.
    fn challenged(&self, served: &str, provider_result: B256) -> B256 {
        let terms = terms(Address::repeat_byte(0xc0), Address::repeat_byte(0xa0), &spec("moo"), 1);
        let id = self.chain.create(&terms);
        let record = record_of(terms, DealStatus::Challenged);
        self.solver.put_job_offer(record.job_offer, spec(served), &PrivateKeySigner::random());
        self.solver.put_deal(record);
        self.chain.put(id, DealState::Challenged, 2_000, provider_result);
        id
    }

    /// The result hash an honest run of `spec("moo")` gives.
    fn honest_result(&self) -> B256 {
        let out = self.dir.path().join("honest");
        std::fs::create_dir_all(out.join("outputs")).unwrap();
        crate::bundle::write_bundle(&fake_results(&spec("moo"), &out.join("outputs")), &out.join("b.tar")).unwrap()
    }

    async fn run_to_close(&self, mut m: Mediation) -> Mediation {
        for _ in 0..100 {
            match self.service.step(&mut m).await {
                Ok(true) => return m,
                Ok(false) => {}
                Err(e) => panic!("{e}"),
            }
        }
        panic!("never closed: {m:?}");
    }
}

#[tokio::test]
async fn an_honest_result_is_ruled_honest_once_even_after_a_restart() {
    let rig = Rig::new();
    let id = rig.challenged("moo", rig.honest_result());
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(m.closed, Some(Closed::Settled(DealState::MediatedHonest)));
    assert_eq!(rig.chain.count(|t| *t == Tx::Mediate(id, true)), 1);
    assert_eq!(rig.executor.runs(), 1);
    // Restarted with the stored record: nothing is run or sent again.
    let again = rig.run_to_close(Mediation { closed: None, ..m }).await;
    assert_eq!(again.closed, Some(Closed::Settled(DealState::MediatedHonest)));
    assert_eq!((rig.executor.runs(), rig.chain.txs().len()), (1, 1));
}

#[tokio::test]
async fn a_restart_after_the_rerun_rules_without_running_again() {
    let rig = Rig::new();
    let id = rig.challenged("moo", B256::repeat_byte(9));
    let m = Mediation { rerun: Some(rig.honest_result()), ..Mediation::new(id) };
    let m = rig.run_to_close(m).await;
    assert_eq!(m.provider_honest, Some(false), "a different hash on chain, twice, is dishonest");
    assert_eq!(rig.executor.runs(), 1, "only the second run");
    assert_eq!(rig.chain.count(|t| *t == Tx::Mediate(id, false)), 1);
    assert!(!rig.dir.path().join("jobs").join(id.to_string()).exists(), "work directory removed");
}

#[tokio::test]
async fn a_job_that_is_not_reproducible_does_not_get_the_provider_slashed() {
    let rig = Rig::new();
    rig.executor.random.store(true, std::sync::atomic::Ordering::SeqCst);
    // The provider's run printed its own random line: unlike either of the mediator's.
    let id = rig.challenged("moo", B256::repeat_byte(9));
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(rig.executor.runs(), 2, "ran twice before judging");
    assert_ne!(m.rerun, m.second_run);
    assert_eq!(m.provider_honest, Some(true));
    assert_eq!(rig.chain.count(|t| *t == Tx::Mediate(id, true)), 1);
    assert_eq!(m.closed, Some(Closed::Settled(DealState::MediatedHonest)));
}

#[tokio::test]
async fn a_job_this_machine_cannot_run_is_abstained_from() {
    let rig = Rig::new();
    rig.executor.no_image.store(true, std::sync::atomic::Ordering::SeqCst);
    let id = rig.challenged("moo", B256::repeat_byte(9));
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(m.closed, Some(Closed::Abstained));
    assert!(rig.chain.txs().is_empty(), "no verdict: another mediator is drawn at the deadline");
}

#[tokio::test]
async fn a_spec_that_is_not_the_deals_job_is_never_run() {
    let rig = Rig::new();
    let id = rig.challenged("oink", rig.honest_result());
    let mut m = Mediation::new(id);
    assert!(!rig.service.step(&mut m).await.unwrap(), "the deal is fetched and checked first");
    let err = rig.service.step(&mut m).await.unwrap_err();
    assert!(matches!(err, MediatorError::SpecMismatch { .. }), "{err}");
    assert!(!err.is_fatal(), "retried: the solver may serve the right spec later");
    assert_eq!(rig.executor.runs(), 0);
    assert!(rig.chain.txs().is_empty(), "no verdict on a job it could not check");
}

#[tokio::test]
async fn nothing_is_sent_after_the_mediation_deadline() {
    let rig = Rig::new();
    let id = rig.challenged("moo", rig.honest_result());
    rig.chain.set_now(2_001);
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(m.closed, Some(Closed::DeadlinePassed));
    assert_eq!((rig.executor.runs(), rig.chain.txs().len()), (0, 0));
    // The provider (or anyone) settles it: no other mediator, so the result stands.
    rig.chain.timeout(&rig.chain.dref(id)).await.unwrap();
    assert_eq!(rig.chain.view(id).state, DealState::TimedOutNoVerdict);
}

impl Rig {
    /// A deal naming `mediators`, with a result on chain, challenged and not drawn yet.
    async fn challenged_undrawn(&self, mediators: Vec<Address>) -> B256 {
        let mut terms = terms(Address::repeat_byte(0xc0), Address::repeat_byte(0xa0), &spec("moo"), 1);
        terms.mediators = mediators;
        let id = self.chain.create(&terms);
        let record = record_of(terms, DealStatus::Challenged);
        self.solver.put_job_offer(record.job_offer, spec("moo"), &PrivateKeySigner::random());
        self.solver.put_deal(record);
        self.chain.submit_result(&self.chain.dref(id), self.honest_result()).await.unwrap();
        self.chain.challenge(&self.chain.dref(id)).await.unwrap();
        id
    }
}

#[tokio::test]
async fn a_challenge_nobody_drew_is_drawn_then_ruled() {
    let rig = Rig::new();
    let id = rig.challenged_undrawn(vec![MEDIATOR]).await;
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(m.closed, Some(Closed::Settled(DealState::MediatedHonest)));
    assert_eq!(rig.chain.count(|t| *t == Tx::Draw(id)), 1, "drew once");
    assert_eq!(rig.chain.count(|t| *t == Tx::Mediate(id, true)), 1);
}

#[tokio::test]
async fn a_deal_that_does_not_name_this_mediator_is_left_alone() {
    let rig = Rig::new();
    let id = rig.challenged_undrawn(vec![Address::repeat_byte(0x3e)]).await;
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(m.closed, Some(Closed::NotOurs));
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Draw(_) | Tx::Mediate(..))), 0);
    assert_eq!(rig.executor.runs(), 0);
}

#[tokio::test]
async fn when_the_drawn_mediator_stays_silent_this_one_is_drawn_and_rules() {
    let rig = Rig::new();
    let silent = Address::repeat_byte(0x3e);
    let id = rig.challenged_undrawn(vec![silent, MEDIATOR]).await;
    rig.chain.draw(&rig.chain.dref(id)).await.unwrap(); // the fake draws the first: the silent one
    let mut m = Mediation::new(id);
    for _ in 0..3 {
        assert!(!rig.service.step(&mut m).await.unwrap(), "another mediator's round: watch, do not close");
    }
    assert_eq!(rig.executor.runs(), 0);
    // Its deadline passes; anyone's timeout excludes it and starts a round without it.
    rig.chain.advance(101);
    rig.chain.timeout(&rig.chain.dref(id)).await.unwrap();
    assert_eq!(rig.chain.view(id).state, DealState::Challenged);
    let m = rig.run_to_close(m).await;
    assert_eq!(m.closed, Some(Closed::Settled(DealState::MediatedHonest)));
    assert_eq!(rig.chain.count(|t| *t == Tx::Mediate(id, true)), 1);
}

#[tokio::test]
async fn an_audit_is_rerun_and_ruled_like_a_challenge() {
    let rig = Rig::new();
    let id = rig.challenged("moo", B256::repeat_byte(9));
    rig.chain.put(id, DealState::Audited, 2_000, B256::repeat_byte(9));
    let m = rig.run_to_close(Mediation::new(id)).await;
    assert_eq!(m.provider_honest, Some(false), "a result no run reproduces fails its audit");
    assert_eq!(rig.chain.count(|t| *t == Tx::Mediate(id, false)), 1);
    assert_eq!(rig.executor.runs(), 2);
}

#[tokio::test]
async fn an_appeal_drawn_to_this_mediator_is_rerun_and_overturns_a_wrong_verdict() {
    let rig = Rig::as_account(APPEAL_MEDIATOR);
    // The deal's mediator ruled an honest result dishonest; the provider appealed and
    // the network's pool drew this mediator.
    let id = rig.challenged("moo", rig.honest_result());
    rig.chain.put(id, DealState::MediatedDishonest, 2_000, rig.honest_result());
    rig.chain.appeal(&rig.chain.dref(id)).await.unwrap();
    rig.chain.draw_appeal(&rig.chain.dref(id)).await.unwrap();
    let mut m = Mediation::new(id);
    m.appeal = true;
    let m = rig.run_to_close(m).await;
    assert_eq!(m.provider_honest, Some(true));
    assert_eq!(rig.chain.count(|t| *t == Tx::RuleAppeal(id, true)), 1, "ruled through ruleAppeal");
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::Mediate(..))), 0);
    let v = rig.chain.view(id);
    assert_ne!(v.flags & crate::chain::api::FLAG_OVERTURNED, 0, "the first verdict is overturned: {v:?}");
}

#[tokio::test]
async fn an_appeal_drawn_to_another_mediator_is_not_ruled_here() {
    let rig = Rig::new();
    let id = rig.challenged("moo", rig.honest_result());
    rig.chain.put(id, DealState::MediatedDishonest, 2_000, rig.honest_result());
    rig.chain.appeal(&rig.chain.dref(id)).await.unwrap();
    rig.chain.draw_appeal(&rig.chain.dref(id)).await.unwrap();
    let mut m = Mediation::new(id);
    m.appeal = true;
    let m = rig.run_to_close(m).await;
    assert_eq!(m.closed, Some(Closed::NotOurs));
    assert_eq!(rig.chain.count(|t| matches!(t, Tx::RuleAppeal(..))), 0);
    assert_eq!(rig.executor.runs(), 0);
}
