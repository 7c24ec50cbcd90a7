//! One challenge of a deal that names this mediator ([`Mediation`], as kept in its store)
//! and the pure decision of what to do next ([`decide`]): the deal on chain, the chain's
//! clock and what the mediator has done so far → draw, wait, re-run, rule, or close.
//!
//! Verdicts blame only the guilty (THREATS S2): a re-run that matches the provider's result
//! makes it honest at once; one that differs is run a second time, and only when the
//! mediator's own two runs agree with each other and not with the provider is the provider
//! ruled dishonest. Two runs that differ mean the job is not reproducible (randomness, the
//! clock): the job creator's spec is to blame, not the provider, who is ruled honest.
//!
//! A challenge's mediator is drawn from the challenge block's hash by a `draw` call that
//! anyone may send; every mediator of the deal sends it if nobody did. A mediator that is
//! not drawn keeps watching until the deal settles: if the drawn one stays silent past its
//! deadline, the next round may draw this one.

use crate::chain::{DealState, DealView};
use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Why a mediation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closed {
    /// The deal settled in this state (after this mediator's verdict, or otherwise).
    Settled(DealState),
    /// The deal does not name this mediator (or, in records of older versions, another
    /// mediator was drawn).
    NotOurs,
    /// The mediation deadline passed before a verdict.
    DeadlinePassed,
    /// This mediator cannot run the job (its image is not here, the spec is invalid or not
    /// the deal's): it sends no verdict, so that at its deadline another mediator is drawn
    /// (or, with none left, the result stands).
    Abstained,
}

/// One challenge, as kept in the mediator's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mediation {
    /// The deal.
    pub deal: B256,
    /// The result hash of this mediator's own run, once it ran the job.
    pub rerun: Option<B256>,
    /// The result hash of its second run, made when the first differed from the provider's.
    #[serde(default)]
    pub second_run: Option<B256>,
    /// The verdict sent, if any.
    pub provider_honest: Option<bool>,
    /// The `mediate` transaction.
    pub tx: Option<B256>,
    /// How it ended; `None` while open.
    pub closed: Option<Closed>,
    /// Whether the deal names this mediator; `None` until checked.
    #[serde(default)]
    pub named: Option<bool>,
    /// The block of the event that brought the case (a challenge, an audit, an appeal
    /// drawing this mediator): the deal's events are read from there.
    #[serde(default)]
    pub since_block: u64,
    /// Whether this is an appeal drawn to this mediator from the network's pool (else a
    /// challenge or an audit of a deal naming it).
    #[serde(default)]
    pub appeal: bool,
    /// The deal's terms, once fetched and checked against its id.
    #[serde(default)]
    pub deal_ref: Option<crate::chain::DealRef>,
    /// The deal's job offer at the solver (its spec), once fetched.
    #[serde(default)]
    pub job_offer: B256,
}

impl Mediation {
    /// A challenge or an audit just seen in block `since_block`.
    pub fn new(deal: B256) -> Self {
        Self {
            deal,
            rerun: None,
            second_run: None,
            provider_honest: None,
            tx: None,
            closed: None,
            named: None,
            since_block: 0,
            appeal: false,
            deal_ref: None,
            job_offer: B256::ZERO,
        }
    }

    /// The key it is kept under: a deal may bring one dispute and one appeal.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.deal.to_vec();
        if self.appeal {
            k.push(1);
        }
        k
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the chain moves (another mediator rules, or a timeout starts a round).
    Wait,
    /// Draw the round's mediator: nobody has yet.
    Draw,
    /// Fetch the job, check it against the deal and run it (again, when the first run
    /// differed from the provider's result).
    Rerun,
    /// Send the verdict.
    Rule {
        /// Whether the provider's result matches the re-run.
        provider_honest: bool,
    },
    /// Nothing left to do.
    Close(Closed),
}

/// What mediator `me` does with `m` given the deal `view` at `now`. Pure.
pub fn decide(m: &Mediation, view: &DealView, now: u64, me: Address) -> Action {
    if m.appeal {
        // An appeal drawn to this mediator: it re-runs the job and rules, like a dispute.
        if view.state != DealState::Appealed {
            return Action::Close(Closed::Settled(view.state));
        }
        if view.mediator != me {
            return Action::Close(Closed::NotOurs);
        }
    } else {
        if view.state.is_final() {
            return Action::Close(Closed::Settled(view.state));
        }
        if !view.state.is_dispute() {
            return Action::Close(Closed::NotOurs);
        }
        if view.awaits_draw(now) {
            return Action::Draw;
        }
    }
    if view.mediator != me {
        return Action::Wait;
    }
    if view.past_deadline(now) {
        // Excluded from the next rounds once anyone calls `timeout`.
        return Action::Close(Closed::DeadlinePassed);
    }
    let theirs = view.result_hash;
    match (m.rerun, m.second_run) {
        (None, _) => Action::Rerun,
        (Some(first), _) if first == theirs => Action::Rule { provider_honest: true },
        (Some(_), None) => Action::Rerun,
        // Honest unless the job is reproducible and the provider's result is not its result.
        (Some(first), Some(second)) => Action::Rule { provider_honest: second == theirs || first != second },
    }
}

/// Whether the mediator's own two runs of the job differed (it is not reproducible).
pub fn not_reproducible(m: &Mediation) -> bool {
    matches!((m.rerun, m.second_run), (Some(a), Some(b)) if a != b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Address = Address::repeat_byte(7);

    fn challenged(result: u8, deadline: u64) -> DealView {
        DealView {
            state: DealState::Challenged,
            deadline,
            result_hash: B256::repeat_byte(result),
            mediator: ME,
            ..DealView::none()
        }
    }

    #[test]
    fn reruns_then_rules_by_comparing_hashes() {
        let mut m = Mediation::new(B256::repeat_byte(1));
        assert_eq!(decide(&m, &challenged(5, 100), 10, ME), Action::Rerun);
        m.rerun = Some(B256::repeat_byte(5));
        assert_eq!(decide(&m, &challenged(5, 100), 10, ME), Action::Rule { provider_honest: true });
        // A first run unlike the provider's is not enough to blame it: run again.
        assert_eq!(decide(&m, &challenged(6, 100), 10, ME), Action::Rerun);
        m.second_run = Some(B256::repeat_byte(5));
        assert_eq!(decide(&m, &challenged(6, 100), 10, ME), Action::Rule { provider_honest: false });
        assert!(!not_reproducible(&m));
    }

    #[test]
    fn a_job_whose_own_runs_differ_blames_nobody() {
        let mut m = Mediation::new(B256::repeat_byte(1));
        m.rerun = Some(B256::repeat_byte(5));
        m.second_run = Some(B256::repeat_byte(9));
        assert!(not_reproducible(&m));
        assert_eq!(decide(&m, &challenged(6, 100), 10, ME), Action::Rule { provider_honest: true });
        // The second run matching the provider's result is honest too.
        assert_eq!(decide(&m, &challenged(9, 100), 10, ME), Action::Rule { provider_honest: true });
    }

    #[test]
    fn a_restart_never_reruns_or_rules_twice() {
        // Re-ran before the restart: rules without running again.
        let mut m = Mediation::new(B256::repeat_byte(1));
        m.rerun = Some(B256::repeat_byte(5));
        assert!(matches!(decide(&m, &challenged(5, 100), 10, ME), Action::Rule { .. }));
        let twice = Mediation { second_run: Some(B256::repeat_byte(5)), ..Mediation::new(B256::repeat_byte(1)) };
        let twice = Mediation { rerun: Some(B256::repeat_byte(5)), ..twice };
        assert!(matches!(decide(&twice, &challenged(6, 100), 10, ME), Action::Rule { provider_honest: false }));
        // Ruled before the restart: the deal is settled, nothing is sent.
        let settled = DealView { state: DealState::MediatedHonest, ..challenged(5, 100) };
        assert_eq!(decide(&m, &settled, 10, ME), Action::Close(Closed::Settled(DealState::MediatedHonest)));
    }

    #[test]
    fn nobody_drew_so_this_mediator_draws() {
        let m = Mediation::new(B256::repeat_byte(1));
        let undrawn = DealView { mediator: Address::ZERO, ..challenged(5, 100) };
        assert_eq!(decide(&m, &undrawn, 10, ME), Action::Draw);
        // The round's time is up undrawn: whoever calls `timeout` starts the next round.
        assert_eq!(decide(&m, &undrawn, 101, ME), Action::Wait);
    }

    #[test]
    fn timeouts_and_other_mediators_close_it() {
        let m = Mediation::new(B256::repeat_byte(1));
        assert_eq!(decide(&m, &challenged(5, 100), 101, ME), Action::Close(Closed::DeadlinePassed));
        assert_eq!(decide(&m, &challenged(5, 100), 100, ME), Action::Rerun, "inclusive deadline");
        // Another mediator was drawn: watch, it may stay silent and this one be drawn next.
        let other = DealView { mediator: Address::repeat_byte(8), ..challenged(5, 100) };
        assert_eq!(decide(&m, &other, 10, ME), Action::Wait);
        assert_eq!(decide(&m, &other, 101, ME), Action::Wait);
        let timed_out = DealView { state: DealState::TimedOutNoVerdict, ..challenged(5, 100) };
        assert_eq!(decide(&m, &timed_out, 200, ME), Action::Close(Closed::Settled(DealState::TimedOutNoVerdict)));
    }
}
