//! The contracts' enums as Rust types: a deal's [`DealState`], a job board request's
//! [`RequestStatus`] and a registry [`Role`]. Their numbering is the contracts' ABI; no
//! other code compares state numbers.

use serde::{Deserialize, Serialize};

/// A number the contract does not define for this enum (a newer contract, or a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chain reported {what} {value}, which this dcn does not know: upgrade dcn or check the contract")]
pub struct UnknownValue {
    /// Which enum.
    pub what: &'static str,
    /// The number.
    pub value: u8,
}

/// `DcnDeals.State`: where a deal is on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum DealState {
    /// No such deal (never created).
    None = 0,
    /// Created: the provider must submit a result before the deadline.
    Created = 1,
    /// A result hash is on chain: the job creator must accept or challenge.
    ResultSubmitted = 2,
    /// Challenged: a mediator of the deal is drawn (by `draw`, from the next block) and
    /// must rule; one that stays silent past its deadline is replaced by another.
    Challenged = 3,
    /// Final: the job creator accepted; the provider was paid.
    Accepted = 4,
    /// Final: the mediator found the provider honest. The job creator may appeal within
    /// the appeal window (that moves bonds and fees only).
    MediatedHonest = 5,
    /// Final: the mediator found the provider dishonest; its collateral was slashed. The
    /// provider may appeal within the appeal window.
    MediatedDishonest = 6,
    /// Final: no result before the deadline; refund, collateral to the job creator.
    TimedOutNoResult = 7,
    /// Final: the job creator did not judge in time; the provider was paid.
    TimedOutAccepted = 8,
    /// Final: no mediator ruled in time, so the result stood: the provider was paid and
    /// the job creator's mediation fee went back.
    TimedOutNoVerdict = 9,
    /// Final: the provider cancelled its signature before the deal was created.
    Cancelled = 10,
    /// Audited: the result's block drew an audit when it was accepted (or not judged in
    /// time); a mediator of the deal is drawn and rules as for a challenge, paid from the
    /// job creator's audit fee. One round: a silent auditor leaves the result standing.
    Audited = 11,
    /// A verdict was appealed: a mediator from the network's pool is drawn and rules. The
    /// deal's money stays as the verdict settled it; the appeal moves bonds and fees.
    Appealed = 12,
}

impl DealState {
    /// Every state, in the contract's order.
    pub const ALL: [DealState; 13] = [
        Self::None,
        Self::Created,
        Self::ResultSubmitted,
        Self::Challenged,
        Self::Accepted,
        Self::MediatedHonest,
        Self::MediatedDishonest,
        Self::TimedOutNoResult,
        Self::TimedOutAccepted,
        Self::TimedOutNoVerdict,
        Self::Cancelled,
        Self::Audited,
        Self::Appealed,
    ];

    /// The state for the contract's number.
    pub fn from_chain(value: u8) -> Result<Self, UnknownValue> {
        Self::ALL.get(usize::from(value)).copied().ok_or(UnknownValue { what: "deal state", value })
    }

    /// Whether the deal's money is settled: nothing moves its price or collateral any
    /// more (a mediated deal may still be appealed, which moves bonds and fees).
    pub fn is_final(self) -> bool {
        self >= Self::Accepted && self != Self::Audited && self != Self::Appealed
    }

    /// Whether a mediator's verdict settled the deal.
    pub fn is_mediated(self) -> bool {
        matches!(self, Self::MediatedHonest | Self::MediatedDishonest)
    }

    /// Whether a mediator of the deal is to rule now: a challenge or an audit.
    pub fn is_dispute(self) -> bool {
        matches!(self, Self::Challenged | Self::Audited)
    }

    /// Whether the state waits for someone before a deadline (created, result submitted,
    /// a dispute, an appeal): after it, anyone may call `timeout`.
    pub fn has_deadline(self) -> bool {
        matches!(self, Self::Created | Self::ResultSubmitted | Self::Challenged | Self::Audited | Self::Appealed)
    }

    /// Whether the provider was paid in this final state.
    pub fn provider_paid(self) -> bool {
        matches!(self, Self::Accepted | Self::MediatedHonest | Self::TimedOutAccepted | Self::TimedOutNoVerdict)
    }

    /// Whether the provider lost its collateral in this final state.
    pub fn provider_slashed(self) -> bool {
        matches!(self, Self::MediatedDishonest | Self::TimedOutNoResult)
    }

    /// The snake_case name used in JSON, logs and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Created => "created",
            Self::ResultSubmitted => "result_submitted",
            Self::Challenged => "challenged",
            Self::Accepted => "accepted",
            Self::MediatedHonest => "mediated_honest",
            Self::MediatedDishonest => "mediated_dishonest",
            Self::TimedOutNoResult => "timed_out_no_result",
            Self::TimedOutAccepted => "timed_out_accepted",
            Self::TimedOutNoVerdict => "timed_out_no_verdict",
            Self::Cancelled => "cancelled",
            Self::Audited => "audited",
            Self::Appealed => "appealed",
        }
    }
}

impl std::fmt::Display for DealState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `DcnJobBoard.Status`: where a contract's job request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RequestStatus {
    /// No such request.
    None = 0,
    /// Waiting for the operator to deliver a result.
    Open = 1,
    /// The result was delivered; the operator was paid.
    Delivered = 2,
    /// The requester took its payment back after the deadline.
    Refunded = 3,
}

impl RequestStatus {
    /// The status for the contract's number.
    pub fn from_chain(value: u8) -> Result<Self, UnknownValue> {
        match value {
            0 => Ok(Self::None),
            1 => Ok(Self::Open),
            2 => Ok(Self::Delivered),
            3 => Ok(Self::Refunded),
            _ => Err(UnknownValue { what: "job request status", value }),
        }
    }
}

/// `DcnRegistry.Role`: what a registered service does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Role {
    /// Matches offers into deals.
    Solver = 0,
    /// Rules on challenged deals.
    Mediator = 1,
    /// Sells compute.
    Provider = 2,
}

impl Role {
    /// The contract's number.
    pub fn to_chain(self) -> u8 {
        self as u8
    }

    /// The name, as in `dcn <role>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Solver => "solver",
            Self::Mediator => "mediator",
            Self::Provider => "provider",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_the_contracts() {
        for (n, s) in DealState::ALL.iter().enumerate() {
            assert_eq!(*s as u8 as usize, n);
            assert_eq!(DealState::from_chain(n as u8).unwrap(), *s);
        }
        assert!(DealState::from_chain(13).is_err());
        let finals: Vec<_> = DealState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals.len(), 7, "audits and appeals are not final: {finals:?}");
        // Every settled deal either paid or slashed the provider; only a cancelled one
        // (never created) did neither.
        assert!(finals.iter().all(|s| s.provider_paid() != s.provider_slashed() || *s == DealState::Cancelled));
        assert_eq!(RequestStatus::from_chain(1).unwrap(), RequestStatus::Open);
        assert!(RequestStatus::from_chain(4).is_err());
        assert_eq!(Role::Provider.to_chain(), 2);
    }
}
