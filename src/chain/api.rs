//! What the roles need of the chain, as traits with domain verbs: [`DealsChain`] (read a
//! deal, the chain's clock, escrow and every deal transaction), [`BoardChain`] (the job
//! board's requests) and [`LogSource`] (contract logs for followers). [`AlloyChain`] is the
//! implementation over a real node; the roles' unit tests use fakes.
//!
//! Every transaction method waits for its receipt and fails if it reverted, returning the
//! transaction hash.

use super::bindings::DcnDeals;
use super::deals::CreateCheck;
use super::heads::Heads;
use super::state::{DealState, RequestStatus};
use super::ChainError;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::rpc::types::{Filter, Log};
use async_trait::async_trait;

/// A deal as a party knows it: its id, its signed terms, and a block at or before the
/// first of its events this party needs (its creation for the parties, the dispute's start
/// for a mediator): the case is rebuilt from the deal's events from there (THREATS: a
/// party never trusts a case it did not read from the chain).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DealRef {
    /// The deal id.
    pub id: B256,
    /// The terms, as signed.
    pub deal: DcnDeals::Deal,
    /// Where its events start for this party.
    pub since_block: u64,
}

impl DealRef {
    /// What `DcnDeals` calls pass back of the terms (its `termsOf`).
    pub fn terms(&self) -> DcnDeals::Terms {
        terms_of(&self.deal)
    }
}

/// `DcnDeals.termsOf`: what later calls pass back of a deal's terms.
pub fn terms_of(d: &DcnDeals::Deal) -> DcnDeals::Terms {
    use alloy::primitives::aliases::U96;
    DcnDeals::Terms {
        jobCreator: d.jobCreator,
        provider: d.provider,
        price: U96::saturating_from(d.price),
        collateral: U96::saturating_from(d.collateral),
        mediationFee: U96::saturating_from(d.mediationFee),
        auditFee: U96::saturating_from(d.auditFee),
        auditPpm: d.auditPpm,
        judgeTimeout: d.judgeTimeout as u32,
        mediationTimeout: d.mediationTimeout as u32,
        // `abi.encodePacked(address[])` pads each element to a word.
        mediators: alloy::primitives::keccak256(d.mediators.iter().flat_map(|m| m.into_word().0).collect::<Vec<u8>>()),
        jobHash: d.jobHash,
    }
}

/// A deal as the chain holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealView {
    /// Where it is.
    pub state: DealState,
    /// Deadline of the current waiting state, unix seconds; in a mediated state, the end
    /// of its appeal window.
    pub deadline: u64,
    /// The block whose hash draws the current audit, mediator or appeal mediator.
    pub mark: u64,
    /// `DcnDeals` flags (`FLAG_HONEST`, `FLAG_AUDIT`, …): see [`DealView::audit`] and the others.
    pub flags: u8,
    /// The current round's drawn mediator as 1 + its index in the deal's list; 0: none.
    pub drawn: u8,
    /// The submitted result hash (zero before).
    pub result_hash: B256,
    /// The mediator who must rule now: the current round's drawn mediator of a challenge or
    /// audit, the appeal's mediator of an appeal; zero until drawn.
    pub mediator: Address,
    /// What the deal's life added to its terms, as its events tell it.
    pub case: DcnDeals::Case,
}

/// `DcnDeals.FLAG_HONEST`: the verdict that settled the deal found the provider honest.
pub const FLAG_HONEST: u8 = 1;
/// `DcnDeals.FLAG_APPEAL_BY_JOB_CREATOR`.
pub const FLAG_APPEAL_BY_JOB_CREATOR: u8 = 2;
/// `DcnDeals.FLAG_APPEAL_DONE`: the verdict was appealed (or may no longer be).
pub const FLAG_APPEAL_DONE: u8 = 4;
/// `DcnDeals.FLAG_OVERTURNED`: the appeal overturned the verdict.
pub const FLAG_OVERTURNED: u8 = 8;
/// `DcnDeals.FLAG_AUDIT`: the dispute is (was) an audit.
pub const FLAG_AUDIT: u8 = 16;

impl DealView {
    /// A deal the chain does not have.
    pub fn none() -> Self {
        Self {
            state: DealState::None,
            deadline: 0,
            mark: 0,
            flags: 0,
            drawn: 0,
            result_hash: B256::ZERO,
            mediator: Address::ZERO,
            case: empty_case(),
        }
    }

    /// Whether the deadline of its waiting state passed at `now` (deadlines are inclusive:
    /// `timeout` is allowed from `deadline + 1`).
    pub fn past_deadline(&self, now: u64) -> bool {
        self.state.has_deadline() && now > self.deadline
    }

    /// Whether a dispute (challenge or audit) waits for someone to draw its mediator
    /// before the round's deadline.
    pub fn awaits_draw(&self, now: u64) -> bool {
        self.state.is_dispute() && self.mediator.is_zero() && !self.past_deadline(now)
    }

    /// Whether an appeal waits for someone to draw its mediator before its deadline.
    pub fn awaits_appeal_draw(&self, now: u64) -> bool {
        self.state == DealState::Appealed && self.mediator.is_zero() && !self.past_deadline(now)
    }

    /// Whether the dispute is (was) an audit rather than a challenge.
    pub fn audit(&self) -> bool {
        self.flags & FLAG_AUDIT != 0
    }

    /// Whether the verdict that settled the deal found the provider honest.
    pub fn ruled_honest(&self) -> bool {
        self.flags & FLAG_HONEST != 0
    }

    /// Whether the job creator made the appeal (else the provider did).
    pub fn appealed_by_job_creator(&self) -> bool {
        self.flags & FLAG_APPEAL_BY_JOB_CREATOR != 0
    }

    /// Whether a mediated deal may still be appealed at `now` by its loser.
    pub fn appealable(&self, now: u64) -> bool {
        matches!(self.state, DealState::MediatedHonest | DealState::MediatedDishonest)
            && self.flags & FLAG_APPEAL_DONE == 0
            && now <= self.deadline
    }
}

/// The case of a deal before anything happened to it.
pub fn empty_case() -> DcnDeals::Case {
    DcnDeals::Case { resultHash: B256::ZERO, excluded: 0, ruledBy: Address::ZERO, appealMediator: Address::ZERO }
}

/// The network's rules for deals (`DcnDeals.params()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkRules {
    /// Fewest mediators a deal names.
    pub min_mediators: u8,
    /// Least audit chance, parts per million.
    pub min_audit_ppm: u32,
    /// Seconds after a verdict in which its loser may appeal.
    pub appeal_window: u32,
    /// Least mediation and audit fee.
    pub min_mediation_fee: U256,
    /// What a silent drawn mediator loses of its bond.
    pub silence_slash: U256,
    /// Least bond of a drawable mediator.
    pub min_bond: U256,
    /// What an appeal costs.
    pub appeal_fee: U256,
}

/// What sending a transaction gave: its hash and the block it was mined in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The transaction hash.
    pub tx: B256,
    /// Its block.
    pub block: u64,
}

/// A job request on the job board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    /// Where it is.
    pub status: RequestStatus,
    /// Who asked (a contract, usually).
    pub requester: Address,
    /// The operator it was made under: the only account that may deliver it.
    pub operator: Address,
    /// The module name.
    pub module: String,
    /// `Key=Value` inputs.
    pub inputs: Vec<String>,
    /// The content hash of the job spec the requester wants run.
    pub job_hash: B256,
    /// What the requester pays the operator on delivery.
    pub payment: U256,
    /// Delivery deadline, unix seconds. Unclaimed, the requester may take its payment back
    /// after it; claimed, the operator may deliver until [`DELIVERY_GRACE_SECS`] after it.
    pub deadline: u64,
    /// The deal the operator claimed it with (zero: none).
    pub deal: B256,
}

/// `DcnJobBoard.DELIVERY_GRACE`: how long after its deadline a claimed request may still be
/// delivered.
pub const DELIVERY_GRACE_SECS: u64 = 86_400;

/// The `DcnDeals` contract, as a party to deals sees it. Calls after creation take the
/// party's [`DealRef`]: the implementation passes the terms and the case (rebuilt from the
/// deal's events) back to the contract.
#[async_trait]
pub trait DealsChain: Send + Sync {
    /// The account that signs the transactions.
    fn account(&self) -> Address;
    /// Wakes on each new block, so a wait for the next state ends when the chain changes
    /// (none by default: waits last their whole time).
    fn heads(&self) -> Heads {
        Heads::none()
    }
    /// Deal `id`'s state, deadline and flags as stored now, without its case (state
    /// `None` if it was never created): what a reader that sends nothing needs.
    async fn state(&self, id: B256) -> Result<DealView, ChainError>;
    /// `deal` as stored now, with its case.
    async fn deal(&self, deal: &DealRef) -> Result<DealView, ChainError>;
    /// The time the next block will carry, about: deadlines are compared with it.
    async fn now(&self) -> Result<u64, ChainError>;
    /// The latest block's timestamp. The chain has passed a time for certain only once a
    /// block carries a later one: until then a block producer whose clock lags may still
    /// include a transaction that the time forbids.
    async fn block_time(&self) -> Result<u64, ChainError>;
    /// The latest block number: a party records it before a deal can exist, as the block
    /// its events start from.
    async fn block_number(&self) -> Result<u64, ChainError>;
    /// The network's rules for deals.
    async fn rules(&self) -> Result<NetworkRules, ChainError>;
    /// Tops this account's free escrow up to `need` (approving and depositing the
    /// shortfall); returns what was deposited. Concurrent jobs of one account take turns
    /// (`queue`), so no top-up reads a balance another is about to spend.
    async fn ensure_free_escrow(&self, need: U256) -> Result<U256, ChainError>;
    /// Tops this account's mediator bond up to `need` (depositing and posting what is
    /// short); returns what was posted. Fails if the bond is being withdrawn.
    async fn ensure_bond(&self, need: U256) -> Result<U256, ChainError>;
    /// `createDeal` with the provider's signature; as its job creator, first tops the free
    /// escrow up to the price and the audit fee, in the same escrow turn. A revert by the
    /// provider's doing is [`ChainError::ProviderFault`].
    async fn create_deal(&self, deal: &DcnDeals::Deal, signature: Bytes) -> Result<Sent, ChainError>;
    /// What `createDeal(deal, signature)` sent by the deal's job creator would do now: a call
    /// at the latest block, nothing sent. The job creator asks before creating a signed
    /// deal, and the solver asks before it believes a job creator's report that one failed
    /// by its provider's doing (THREATS N3).
    async fn check_create(&self, deal: &DcnDeals::Deal, signature: &Bytes) -> Result<CreateCheck, ChainError>;
    /// `submitResult`, as the deal's provider.
    async fn submit_result(&self, deal: &DealRef, result_hash: B256) -> Result<B256, ChainError>;
    /// `acceptResult`, as the deal's job creator: the provider is paid, or an audit starts.
    async fn accept_result(&self, deal: &DealRef) -> Result<B256, ChainError>;
    /// `challenge`, as the deal's job creator (pays the mediation fee, topping the free
    /// escrow up to it first, in one escrow turn).
    async fn challenge(&self, deal: &DealRef) -> Result<B256, ChainError>;
    /// `draw`: draws the mediator of a dispute's round (anyone may, from the block after
    /// it started; drawing again changes nothing).
    async fn draw(&self, deal: &DealRef) -> Result<B256, ChainError>;
    /// `mediate`, as the dispute's drawn mediator.
    async fn mediate(&self, deal: &DealRef, provider_honest: bool) -> Result<B256, ChainError>;
    /// `appeal`, as the party the verdict went against (pays the appeal fee, topping the
    /// free escrow up to it first).
    async fn appeal(&self, deal: &DealRef) -> Result<B256, ChainError>;
    /// `drawAppeal`: draws the appeal's mediator from the network's pool (anyone may).
    async fn draw_appeal(&self, deal: &DealRef) -> Result<B256, ChainError>;
    /// `ruleAppeal`, as the appeal's mediator.
    async fn rule_appeal(&self, deal: &DealRef, provider_honest: bool) -> Result<B256, ChainError>;
    /// `timeout`: settles a deal whose deadline passed, by the rule of its state.
    async fn timeout(&self, deal: &DealRef) -> Result<B256, ChainError>;
}

/// The `DcnJobBoard` contract, as its operator sees it.
#[async_trait]
pub trait BoardChain: Send + Sync {
    /// The account allowed to deliver results.
    async fn operator(&self) -> Result<Address, ChainError>;
    /// Request `id`.
    async fn request(&self, id: U256) -> Result<RequestView, ChainError>;
    /// `claim`: names the deal bought for an open request, so that it is not refunded
    /// while the deal is in flight.
    async fn claim(&self, id: U256, deal: &DealRef) -> Result<B256, ChainError>;
    /// `deliverResult`: pays the operator and calls the requester back.
    async fn deliver_result(&self, id: U256, deal: &DealRef) -> Result<B256, ChainError>;
}

/// Contract logs, read in block ranges by a follower.
#[async_trait]
pub trait LogSource: Send + Sync {
    /// The latest block number.
    async fn head(&self) -> Result<u64, ChainError>;
    /// Wakes on each new block (none by default: a follower then reads at its interval).
    fn heads(&self) -> Heads {
        Heads::none()
    }
    /// The logs matching `filter` in blocks `from..=to`.
    async fn logs(&self, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, ChainError>;
}
