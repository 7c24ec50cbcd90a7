//! What a solver keeps and answers with: offers, deals, uploaded results and the event
//! log. They are the values of the solver's store and the bodies of the API's answers, so
//! both sides of the API share them.

use super::offers::{SignedJobOffer, SignedResourceOffer};
use crate::chain::bindings::DcnDeals;
use crate::chain::DealState;
use alloy::primitives::{Address, Bytes, B256};
use serde::{Deserialize, Serialize};

/// Where an offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// Live: a resource offer with slots to give, or a job offer waiting for a match.
    Open,
    /// A job offer that is in a deal (`deal` names it).
    Matched,
    /// Withdrawn by its owner.
    Cancelled,
    /// Its expiry passed.
    Expired,
    /// A job offer whose deal was never made on chain: it will not be matched again.
    Closed,
}

impl OfferStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [Self::Open, Self::Matched, Self::Cancelled, Self::Expired, Self::Closed];

    /// The status as the API writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Matched => "matched",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Closed => "closed",
        }
    }

    /// Whether the offer can change no more (cancelled, expired or closed).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Cancelled | Self::Expired | Self::Closed)
    }

    /// Parses the `status` query value.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// A resource offer as the solver keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceOfferRecord {
    /// Its EIP-712 id.
    pub id: B256,
    /// Arrival order (the event sequence number of its posting); older wins ties.
    pub seq: u64,
    /// When it arrived, unix milliseconds.
    pub received_at: u64,
    /// Where it stands.
    pub status: OfferStatus,
    /// The signed offer as posted.
    pub signed: SignedResourceOffer,
}

/// A job offer as the solver keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOfferRecord {
    /// Its EIP-712 id.
    pub id: B256,
    /// Arrival order; older jobs are served first.
    pub seq: u64,
    /// When it arrived, unix milliseconds.
    pub received_at: u64,
    /// Where it stands.
    pub status: OfferStatus,
    /// The current deal, once matched.
    pub deal: Option<B256>,
    /// Resource offers whose provider let a proposed deal for this job lapse: not again.
    pub excluded: Vec<B256>,
    /// The signed offer and spec as posted.
    pub signed: SignedJobOffer,
}

/// Either kind of offer.
// A job offer carries its spec and is bigger; boxing it would buy little, offers are few
// enough to keep in memory either way.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OfferRecord {
    /// A provider's offer.
    Resource(ResourceOfferRecord),
    /// A job creator's offer.
    Job(JobOfferRecord),
}

impl OfferRecord {
    /// The offer id.
    pub fn id(&self) -> B256 {
        match self {
            Self::Resource(r) => r.id,
            Self::Job(j) => j.id,
        }
    }

    /// The account that signed it.
    pub fn owner(&self) -> Address {
        match self {
            Self::Resource(r) => r.signed.offer.provider,
            Self::Job(j) => j.signed.offer.jobCreator,
        }
    }

    /// Where it stands.
    pub fn status(&self) -> OfferStatus {
        match self {
            Self::Resource(r) => r.status,
            Self::Job(j) => j.status,
        }
    }

    /// Arrival order.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Resource(r) => r.seq,
            Self::Job(j) => j.seq,
        }
    }

    /// Its expiry, unix seconds.
    pub fn expiry(&self) -> u64 {
        match self {
            Self::Resource(r) => r.signed.offer.expiry,
            Self::Job(j) => j.signed.offer.expiry,
        }
    }
}

/// Where a deal stands at the solver: the two off-chain steps, then the contract's states
/// ([`DealState`]) as the solver last read them, or `expired` when it never reached the
/// chain in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    /// Matched by the solver; waiting for the provider's signature.
    Proposed,
    /// Signed by the provider; waiting for the job creator's `createDeal`.
    Signed,
    /// Created on chain; the provider is running the job.
    Created,
    /// The provider submitted a result hash.
    ResultSubmitted,
    /// The job creator challenged; a mediator is re-running the job.
    Challenged,
    /// The result's block drew an audit; a mediator is re-running the job.
    Audited,
    /// Final: the job creator accepted.
    Accepted,
    /// Final: the mediator found the provider honest.
    MediatedHonest,
    /// Final: the mediator found the provider dishonest.
    MediatedDishonest,
    /// Final: no result before the deadline.
    TimedOutNoResult,
    /// Final: the job creator did not judge in time; the provider was paid.
    TimedOutAccepted,
    /// Final: no mediator ruled in time; the result stood and the provider was paid.
    TimedOutNoVerdict,
    /// Final: never created on chain (not signed or not created in time, cancelled by its
    /// provider, or found uncreatable by its provider's doing: `fault`).
    Expired,
    /// Final: a verdict settled it and its loser appealed (bonds and fees are at stake,
    /// not the deal's money).
    Appealed,
}

impl DealStatus {
    /// Every status, in order.
    pub const ALL: [DealStatus; 14] = [
        Self::Proposed,
        Self::Signed,
        Self::Created,
        Self::ResultSubmitted,
        Self::Challenged,
        Self::Audited,
        Self::Accepted,
        Self::MediatedHonest,
        Self::MediatedDishonest,
        Self::TimedOutNoResult,
        Self::TimedOutAccepted,
        Self::TimedOutNoVerdict,
        Self::Expired,
        Self::Appealed,
    ];

    /// Whether the deal is over (its slot is free again).
    pub fn is_final(self) -> bool {
        self >= Self::Accepted
    }

    /// The status for a state on chain (`None` for a deal the chain does not have).
    pub fn on_chain(state: DealState) -> Option<Self> {
        Some(match state {
            DealState::None => return None,
            DealState::Created => Self::Created,
            DealState::ResultSubmitted => Self::ResultSubmitted,
            DealState::Challenged => Self::Challenged,
            DealState::Accepted => Self::Accepted,
            DealState::MediatedHonest => Self::MediatedHonest,
            DealState::MediatedDishonest => Self::MediatedDishonest,
            DealState::TimedOutNoResult => Self::TimedOutNoResult,
            DealState::TimedOutAccepted => Self::TimedOutAccepted,
            DealState::TimedOutNoVerdict => Self::TimedOutNoVerdict,
            DealState::Cancelled => Self::Expired,
            DealState::Audited => Self::Audited,
            DealState::Appealed => Self::Appealed,
        })
    }

    /// The snake_case name used in JSON, queries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Signed => "signed",
            Self::Created => "created",
            Self::ResultSubmitted => "result_submitted",
            Self::Challenged => "challenged",
            Self::Accepted => "accepted",
            Self::MediatedHonest => "mediated_honest",
            Self::MediatedDishonest => "mediated_dishonest",
            Self::TimedOutNoResult => "timed_out_no_result",
            Self::TimedOutAccepted => "timed_out_accepted",
            Self::TimedOutNoVerdict => "timed_out_no_verdict",
            Self::Expired => "expired",
            Self::Audited => "audited",
            Self::Appealed => "appealed",
        }
    }

    /// Parses [`DealStatus::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// A deal as the solver keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRecord {
    /// The deal id: the EIP-712 digest `DcnDeals.dealId(deal)` returns.
    pub id: B256,
    /// Match order.
    pub seq: u64,
    /// The terms, exactly as `createDeal` takes them.
    pub deal: DcnDeals::Deal,
    /// The job offer it serves.
    pub job_offer: B256,
    /// The resource offer whose slot it holds.
    pub resource_offer: B256,
    /// Where it stands.
    pub state: DealStatus,
    /// The provider's signature over the id, once given.
    pub provider_signature: Option<Bytes>,
    /// When it was matched, unix milliseconds.
    pub created_at: u64,
    /// When its state last changed, unix milliseconds.
    pub updated_at: u64,
    /// Why its provider refused to sign it, in the provider's words (at most
    /// [`MAX_REFUSAL_BYTES`]; a stranger's text: escape it before showing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Why it could not be created on chain, by its provider's doing, once the solver found
    /// so itself (THREATS N3): the deal ended, the provider was struck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<crate::chain::ProviderFault>,
}

/// The longest refusal reason a solver keeps.
pub const MAX_REFUSAL_BYTES: usize = 512;

impl DealRecord {
    /// The deal's parties: job creator, provider and mediators.
    pub fn parties(&self) -> Vec<Address> {
        let mut v = vec![self.deal.jobCreator, self.deal.provider];
        v.extend(self.deal.mediators.iter().copied());
        v
    }
}

/// A result bundle the provider uploaded for a deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The deal.
    pub deal: B256,
    /// sha256 of the uploaded file: its name under `<data_dir>/solver/results/`.
    pub sha256: B256,
    /// Its size in bytes.
    pub size: u64,
    /// When it arrived, unix milliseconds.
    pub uploaded_at: u64,
}

/// What happened, as told to subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An offer was accepted.
    OfferPosted {
        /// The offer.
        offer: B256,
        /// `resource` or `job`.
        kind: String,
    },
    /// An offer was withdrawn by its owner.
    OfferCancelled {
        /// The offer.
        offer: B256,
    },
    /// An offer's expiry passed.
    OfferExpired {
        /// The offer.
        offer: B256,
    },
    /// A job offer will not be matched again (its deal was never created).
    OfferClosed {
        /// The offer.
        offer: B256,
    },
    /// A deal changed state (`proposed` is the match itself).
    Deal {
        /// The deal as it is now.
        deal: Box<DealRecord>,
    },
    /// The provider uploaded the result bundle.
    ResultUploaded {
        /// The deal.
        deal: B256,
        /// Bundle size in bytes.
        size: u64,
    },
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When, unix milliseconds.
    pub at: u64,
    /// Who it concerns: it is delivered to subscribers of these accounts.
    pub accounts: Vec<Address>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A deal its job creator created on chain, with the job: what the job creator (or the job
/// board acting as one) follows to the end, and keeps to resume it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedDeal {
    /// The deal as matched and signed.
    pub deal: DealRecord,
    /// The job.
    pub spec: crate::types::JobSpec,
    /// The `createDeal` transaction.
    pub create_tx: B256,
    /// The block it was mined in: the deal's events start there.
    #[serde(default)]
    pub created_block: u64,
}

impl CreatedDeal {
    /// The deal as its job creator knows it, for the chain.
    pub fn deal_ref(&self) -> crate::chain::DealRef {
        crate::chain::DealRef { id: self.deal.id, deal: self.deal.deal.clone(), since_block: self.created_block }
    }
}
