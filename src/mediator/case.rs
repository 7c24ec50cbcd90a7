//! One challenge this mediator was drawn for ([`Mediation`], as kept in its store) and the
//! pure decision of what to do next ([`decide`]): the deal on chain, the chain's clock and
//! what the mediator has done so far → re-run, rule, or close.

use crate::chain::{DealState, DealView};
use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Why a mediation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closed {
    /// The deal settled in this state (after this mediator's verdict, or otherwise).
    Settled(DealState),
    /// Another mediator was drawn for it.
    NotOurs,
    /// The mediation deadline passed before a verdict.
    DeadlinePassed,
}

/// One challenge, as kept in the mediator's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mediation {
    /// The deal.
    pub deal: B256,
    /// The result hash of this mediator's own run, once it ran the job.
    pub rerun: Option<B256>,
    /// The verdict sent, if any.
    pub provider_honest: Option<bool>,
    /// The `mediate` transaction.
    pub tx: Option<B256>,
    /// How it ended; `None` while open.
    pub closed: Option<Closed>,
}

impl Mediation {
    /// A challenge just seen.
    pub fn new(deal: B256) -> Self {
        Self { deal, rerun: None, provider_honest: None, tx: None, closed: None }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fetch the job, check it against the deal and run it.
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
    if view.state.is_final() {
        return Action::Close(Closed::Settled(view.state));
    }
    if view.state != DealState::Challenged || view.mediator != me {
        return Action::Close(Closed::NotOurs);
    }
    if view.past_deadline(now) {
        return Action::Close(Closed::DeadlinePassed);
    }
    match m.rerun {
        None => Action::Rerun,
        Some(mine) => Action::Rule { provider_honest: mine == view.result_hash },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Address = Address::repeat_byte(7);

    fn challenged(result: u8, deadline: u64) -> DealView {
        DealView { state: DealState::Challenged, deadline, result_hash: B256::repeat_byte(result), mediator: ME }
    }

    #[test]
    fn reruns_then_rules_by_comparing_hashes() {
        let mut m = Mediation::new(B256::repeat_byte(1));
        assert_eq!(decide(&m, &challenged(5, 100), 10, ME), Action::Rerun);
        m.rerun = Some(B256::repeat_byte(5));
        assert_eq!(decide(&m, &challenged(5, 100), 10, ME), Action::Rule { provider_honest: true });
        assert_eq!(decide(&m, &challenged(6, 100), 10, ME), Action::Rule { provider_honest: false });
    }

    #[test]
    fn a_restart_never_reruns_or_rules_twice() {
        // Re-ran before the restart: rules without running again.
        let mut m = Mediation::new(B256::repeat_byte(1));
        m.rerun = Some(B256::repeat_byte(5));
        assert!(matches!(decide(&m, &challenged(5, 100), 10, ME), Action::Rule { .. }));
        // Ruled before the restart: the deal is settled, nothing is sent.
        let settled = DealView { state: DealState::MediatedHonest, ..challenged(5, 100) };
        assert_eq!(decide(&m, &settled, 10, ME), Action::Close(Closed::Settled(DealState::MediatedHonest)));
    }

    #[test]
    fn timeouts_and_other_mediators_close_it() {
        let m = Mediation::new(B256::repeat_byte(1));
        assert_eq!(decide(&m, &challenged(5, 100), 101, ME), Action::Close(Closed::DeadlinePassed));
        assert_eq!(decide(&m, &challenged(5, 100), 100, ME), Action::Rerun, "inclusive deadline");
        let other = DealView { mediator: Address::repeat_byte(8), ..challenged(5, 100) };
        assert_eq!(decide(&m, &other, 10, ME), Action::Close(Closed::NotOurs));
        let timed_out = DealView { state: DealState::TimedOutNoVerdict, ..challenged(5, 100) };
        assert_eq!(decide(&m, &timed_out, 200, ME), Action::Close(Closed::Settled(DealState::TimedOutNoVerdict)));
    }
}
