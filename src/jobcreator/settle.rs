//! Following a created deal to its end: the pure [`decide`] step (the deal on chain, the
//! chain's clock, what the bundle check found and whether the user asked to challenge →
//! an [`Action`]) and the loop that performs it ([`JobCreator::finish`]).
//!
//! Every deadline the job creator can claim is here: no result by the result deadline
//! (refund plus the provider's collateral), a drawn mediator silent past its deadline
//! (another is drawn; when none is left the result stands and the fee comes back), and its
//! own judge deadline passed (the provider is paid). After a challenge it draws the
//! mediator itself, from the next block.

use super::{JobCreator, JobCreatorError, Progress, Step};
use crate::chain::{DealState, DealView};
use crate::protocol::records::CreatedDeal;
use crate::runtime::Backoff;
use crate::units::format_amount;
use alloy::primitives::{Address, B256, U256};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Failures in a row after which reading the deal, or sending a transaction the deal's
/// state still asks for, is given up (with the default poll, about a minute of backoff).
const MAX_FAILURES: u32 = 6;

/// What the check of the result bundle found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Not checked yet.
    Pending,
    /// The bundle hashes to the result on chain.
    Verified,
    /// The bundle is missing, invalid or hashes to something else: the reason, for the
    /// challenge and the user.
    Refuted(String),
}

/// What the job creator does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the chain moves (the provider runs the job, the mediator rules).
    Wait,
    /// Download the bundle and check it against the chain.
    Verify,
    /// Accept the result: the provider is paid.
    Accept,
    /// Challenge the result: a mediator re-runs the job.
    Challenge,
    /// Draw the challenged deal's mediator.
    Draw,
    /// Call `timeout`: the deadline of the current state passed.
    Timeout,
    /// The deal is settled in this state.
    Done(DealState),
}

/// What to do with a deal seen as `view` at `now`. Pure.
pub fn decide(
    view: &DealView,
    now: u64,
    verification: &Verification,
    want_challenge: bool,
    follow_audits: bool,
) -> Action {
    match view.state {
        s if s.is_final() => Action::Done(s),
        // Just created: a node behind the one that mined it may not show it yet.
        DealState::None => Action::Wait,
        // The job creator accepted and the result's block drew an audit: the auditor's
        // verdict decides the provider's pay (and refunds the job creator if the result
        // fails it). Its own part is over unless it follows audits, and its audit fee
        // pays the auditor.
        DealState::Audited if !follow_audits => Action::Done(DealState::Audited),
        _ if view.past_deadline(now) => Action::Timeout,
        _ if view.awaits_draw(now) => Action::Draw,
        DealState::ResultSubmitted => match verification {
            Verification::Pending => Action::Verify,
            Verification::Verified if !want_challenge => Action::Accept,
            Verification::Verified | Verification::Refuted(_) => Action::Challenge,
        },
        _ => Action::Wait,
    }
}

/// How a job ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The deal id.
    pub deal_id: B256,
    /// The provider.
    pub provider: Address,
    /// The price (token units).
    pub price: U256,
    /// The final deal state.
    pub state: DealState,
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

/// The sentence for the user once the deal settled in `state`; `because` is why it was
/// challenged, when the job creator did not ask for it.
pub fn summary(
    state: DealState,
    price: U256,
    collateral: U256,
    fee: U256,
    provider: Address,
    because: Option<&str>,
) -> String {
    let because = because.map(|why| format!("challenged because {why}; ")).unwrap_or_default();
    match state {
        DealState::Accepted => format!("accepted: provider {provider} was paid {} DCN", format_amount(price)),
        DealState::TimedOutNoResult => format!(
            "the provider delivered no result before the deadline: refunded {} DCN and awarded its {} DCN \
             collateral (in escrow; `withdraw` to take it out)",
            format_amount(price),
            format_amount(collateral)
        ),
        DealState::TimedOutAccepted => format!(
            "{because}the judge deadline passed before a judgement: provider {provider} was paid {} DCN",
            format_amount(price)
        ),
        DealState::MediatedHonest => format!(
            "{because}verdict: the provider was honest. It was paid {} DCN and the mediator's fee of {} DCN came from you",
            format_amount(price),
            format_amount(fee)
        ),
        DealState::MediatedDishonest => format!(
            "{because}verdict: the provider cheated. You got back {} DCN and its collateral minus the mediator's fee",
            format_amount(price + fee)
        ),
        DealState::TimedOutNoVerdict => format!(
            "{because}no mediator ruled before its deadline, so the result stood: provider {provider} was paid {} DCN \
             and your mediation fee of {} DCN came back",
            format_amount(price),
            format_amount(fee)
        ),
        DealState::Audited => format!(
            "accepted, and the result's block drew an audit: a mediator re-runs the job. If the result holds, provider \
             {provider} is paid {} DCN and your audit fee pays the auditor; if not, you get back the price and the \
             provider's collateral less the auditor's fee, and your audit fee comes back (`dcn jobs` shows how it ends)",
            format_amount(price)
        ),
        other => format!("the deal is {other}"),
    }
}

impl JobCreator {
    /// Follows a created deal to its end: waits for the result, downloads and verifies it,
    /// accepts (or challenges when `want_challenge` or the bundle does not hold up) and
    /// waits for the verdict, claiming every timeout the job creator is owed.
    pub async fn finish(
        &self,
        created: &CreatedDeal,
        want_challenge: bool,
        progress: &dyn Progress,
    ) -> Result<Outcome, JobCreatorError> {
        let id = created.deal.id;
        let d = &created.deal.deal;
        let deal = created.deal_ref();
        let mut outcome = Outcome {
            deal_id: id,
            provider: d.provider,
            price: d.price,
            state: DealState::Created,
            result_hash: B256::ZERO,
            txs: vec![("create".into(), created.create_tx)],
            dir: None,
            exit_code: None,
            stdout: vec![],
            summary: String::new(),
        };
        let mut verification = Verification::Pending;
        let mut reported: Option<(DealState, Address)> = None;
        // Reads and transactions fail apart: a read that succeeds between two failed
        // transactions must not reset the count that gives up on them.
        let retry = self.terms.poll * 5;
        let mut reads = Backoff::new(retry, Duration::from_secs(30));
        let mut sends = Backoff::new(retry, Duration::from_secs(30));
        let mut first_missing: Option<u64> = None;
        let mut heads = self.chain.heads();
        loop {
            // A block from here on ends the wait for the next state.
            heads.mark_seen();
            let seen = async { Ok::<_, JobCreatorError>((self.chain.deal(&deal).await?, self.chain.now().await?)) };
            let (view, now) = match seen.await {
                Ok(v) => v,
                Err(e) if reads.failures() < MAX_FAILURES => {
                    let delay = reads.next_delay();
                    tracing::warn!(deal = %id, error = %e, retry_in_ms = delay.as_millis() as u64, "reading the deal failed");
                    self.pause(delay).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            reads.reset();
            outcome.result_hash = view.result_hash;
            // A deal this job creator created that the chain does not show (a reorg, a
            // reset development chain) is given up once its result deadline would be over.
            if view.state == DealState::None {
                let since = *first_missing.get_or_insert(now);
                if now > since + d.resultTimeout {
                    return Err(JobCreatorError::Vanished { deal: id });
                }
            }
            if reported != Some((view.state, view.mediator)) {
                reported = Some((view.state, view.mediator));
                sends.reset();
                match view.state {
                    DealState::Created => progress.step(
                        Step::Running,
                        &format!("deal {id} is on chain; provider {} is running the job", d.provider),
                    ),
                    DealState::Audited => progress.step(
                        Step::AwaitingVerdict,
                        "the result was drawn for an audit: a mediator re-runs the job and its verdict settles the \
                         provider's pay",
                    ),
                    DealState::Challenged if view.mediator.is_zero() => {
                        progress.step(Step::AwaitingVerdict, "challenged; drawing one of the deal's mediators")
                    }
                    DealState::Challenged => progress
                        .step(Step::AwaitingVerdict, &format!("mediator {} is re-running the job", view.mediator)),
                    _ => {}
                }
            }
            let tx = match decide(&view, now, &verification, want_challenge, self.follow_audits) {
                Action::Wait => {
                    self.until_block(&mut heads, self.terms.poll).await?;
                    continue;
                }
                Action::Verify => {
                    progress.step(
                        Step::ResultSubmitted,
                        &format!("result {} on chain; downloading the bundle", view.result_hash),
                    );
                    verification = self
                        .verify(&created.deal, &created.spec, view.result_hash, view.deadline, &mut outcome)
                        .await?;
                    match &verification {
                        Verification::Verified => progress.step(
                            Step::Downloaded,
                            &format!("bundle verified against the chain: {}", view.result_hash),
                        ),
                        Verification::Refuted(why) => tracing::warn!(deal = %id, "{why}: challenging"),
                        Verification::Pending => {}
                    }
                    continue;
                }
                Action::Accept => {
                    progress.step(Step::Accepting, "accepting the result");
                    ("accept", self.chain.accept_result(&deal).await)
                }
                Action::Challenge => {
                    progress.step(
                        Step::Challenging,
                        &format!("challenging the result (mediation fee {} DCN)", format_amount(d.mediationFee)),
                    );
                    ("challenge", self.chain.challenge(&deal).await)
                }
                Action::Draw => ("draw", self.chain.draw(&deal).await),
                Action::Timeout => {
                    let why = match view.state {
                        DealState::Created => "the provider missed the result deadline; claiming the refund",
                        DealState::Challenged => {
                            "no verdict before the mediation deadline; another mediator is drawn, or the result stands"
                        }
                        _ => "the judge deadline passed; settling",
                    };
                    progress.step(Step::TimingOut, why);
                    ("timeout", self.chain.timeout(&deal).await)
                }
                Action::Done(state) => {
                    let because = match &verification {
                        Verification::Refuted(why) => Some(why.as_str()),
                        _ => None,
                    };
                    outcome.state = state;
                    outcome.summary = summary(state, d.price, d.collateral, d.mediationFee, d.provider, because);
                    return Ok(outcome);
                }
            };
            match tx {
                (what, Ok(hash)) => {
                    sends.reset();
                    outcome.txs.push((what.to_string(), hash));
                }
                // A transaction that failed is decided again on what the chain says now
                // (a reverted timeout means someone else settled the deal first).
                (what, Err(e)) if sends.failures() < MAX_FAILURES => {
                    let delay = sends.next_delay();
                    tracing::warn!(deal = %id, error = %e, tx = what, "transaction failed; deciding again");
                    self.pause(delay).await?;
                }
                (_, Err(e)) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: DealState, deadline: u64) -> DealView {
        DealView {
            state,
            deadline,
            result_hash: B256::repeat_byte(1),
            mediator: Address::repeat_byte(2),
            ..DealView::none()
        }
    }

    #[test]
    fn waits_verifies_then_accepts_or_challenges() {
        let p = Verification::Pending;
        assert_eq!(decide(&view(DealState::None, 0), 10, &p, false, false), Action::Wait);
        assert_eq!(decide(&view(DealState::Created, 100), 10, &p, false, false), Action::Wait);
        assert_eq!(decide(&view(DealState::ResultSubmitted, 100), 10, &p, false, false), Action::Verify);
        assert_eq!(
            decide(&view(DealState::ResultSubmitted, 100), 10, &Verification::Verified, false, false),
            Action::Accept
        );
        assert_eq!(
            decide(&view(DealState::ResultSubmitted, 100), 10, &Verification::Verified, true, false),
            Action::Challenge
        );
        let refuted = Verification::Refuted("the hash differs".into());
        assert_eq!(decide(&view(DealState::ResultSubmitted, 100), 10, &refuted, false, false), Action::Challenge);
        assert_eq!(decide(&view(DealState::Challenged, 100), 10, &refuted, false, false), Action::Wait);
        // Challenged, nobody drew yet: the job creator draws.
        let undrawn = DealView { mediator: Address::ZERO, ..view(DealState::Challenged, 100) };
        assert_eq!(decide(&undrawn, 10, &refuted, false, false), Action::Draw);
    }

    #[test]
    fn every_deadline_the_job_creator_is_owed_is_claimed() {
        let p = Verification::Pending;
        // No result: refund plus collateral.
        assert_eq!(decide(&view(DealState::Created, 100), 101, &p, false, false), Action::Timeout);
        assert_eq!(
            decide(&view(DealState::Created, 100), 100, &p, false, false),
            Action::Wait,
            "deadlines are inclusive"
        );
        // No verdict: another mediator is drawn, or the result stands.
        assert_eq!(
            decide(&view(DealState::Challenged, 100), 101, &Verification::Verified, true, false),
            Action::Timeout
        );
        // Its own judge deadline passed: settle (the provider is paid) rather than hang.
        assert_eq!(decide(&view(DealState::ResultSubmitted, 100), 101, &p, false, false), Action::Timeout);
    }

    #[test]
    fn a_restart_after_a_transaction_does_not_send_it_again() {
        // After a challenge, the deal is challenged: wait for the verdict, never challenge twice.
        for v in [Verification::Pending, Verification::Verified, Verification::Refuted("x".into())] {
            assert_eq!(decide(&view(DealState::Challenged, 100), 10, &v, true, false), Action::Wait);
        }
        for s in DealState::ALL.into_iter().filter(|s| s.is_final()) {
            assert_eq!(decide(&view(s, 0), 10, &Verification::Pending, true, false), Action::Done(s));
        }
    }

    #[test]
    fn summaries_say_who_got_what() {
        let unit = U256::from(10u64).pow(U256::from(18));
        let (p, c, f, a) = (unit, unit * U256::from(2), unit, Address::repeat_byte(3));
        assert!(summary(DealState::Accepted, p, c, f, a, None).contains("was paid 1 DCN"));
        assert!(summary(DealState::TimedOutNoResult, p, c, f, a, None).contains("refunded 1 DCN and awarded its 2 DCN"));
        let s = summary(DealState::MediatedDishonest, p, c, f, a, Some("the hash differs"));
        assert!(s.starts_with("challenged because the hash differs; verdict: the provider cheated"), "{s}");
        let s = summary(DealState::TimedOutNoVerdict, p, c, f, a, None);
        assert!(s.contains("the result stood") && s.contains("fee of 1 DCN came back"), "{s}");
    }
}
