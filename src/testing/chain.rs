//! [`FakeChain`]: a tiny `DcnDeals` (and job board, and log source) with a clock the test
//! sets; every transaction is recorded as a [`Tx`].

#![allow(clippy::unwrap_used, missing_docs)]

use super::{APPEAL_MEDIATOR, CHAIN_ID, DEALS, MEDIATOR};
use crate::chain::api::{
    empty_case, FLAG_APPEAL_BY_JOB_CREATOR, FLAG_APPEAL_DONE, FLAG_AUDIT, FLAG_HONEST, FLAG_OVERTURNED,
};
use crate::chain::bindings::DcnDeals;
use crate::chain::deals::{deal_id, domain};
use crate::chain::{BoardChain, ChainError, CreateCheck, DealRef, DealState, DealView, DealsChain, LogSource};
use crate::chain::{NetworkRules, ProviderFault, RequestStatus, RequestView, Sent};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::rpc::types::{Filter, Log};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// A transaction a role sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tx {
    Deposit(U256),
    Bond(U256),
    Create(B256),
    Submit(B256, B256),
    Accept(B256),
    Challenge(B256),
    Draw(B256),
    Mediate(B256, bool),
    Appeal(B256),
    DrawAppeal(B256),
    RuleAppeal(B256, bool),
    Timeout(B256),
    Claim(U256, B256),
    Deliver(U256, B256),
}

#[derive(Default)]
struct ChainState {
    now: u64,
    head: u64,
    deals: HashMap<B256, (DealView, Option<DcnDeals::Deal>)>,
    txs: Vec<Tx>,
    fail_reads: u32,
    fail_sends: u32,
    logs: Vec<Log>,
    requests: HashMap<U256, RequestView>,
    free: U256,
    bond: U256,
    // Other accounts' free escrow, where a test set it (unset: enough for anything).
    escrow: HashMap<Address, U256>,
    // How many `check_create` calls were made.
    checks: u32,
    // Mediators excluded from deals' draws after missing a deadline.
    excluded: HashMap<B256, Vec<Address>>,
    // Whether the next accepted (or unjudged) result is drawn for an audit.
    audit_next: bool,
    rules: Option<NetworkRules>,
}

impl ChainState {
    /// What `createDeal(deal, signature)` would do, by the contract's rules for the
    /// provider's part: not cancelled, a signature the contract takes, escrow for the
    /// collateral.
    fn creation(&self, deal: &DcnDeals::Deal, signature: &Bytes) -> CreateCheck {
        let id = deal_id(deal, &domain(CHAIN_ID, DEALS));
        match self.deals.get(&id).map(|(v, _)| v.state) {
            None | Some(DealState::None) => {}
            Some(DealState::Cancelled) => return CreateCheck::ProviderFault(ProviderFault::Cancelled),
            Some(_) => return CreateCheck::Fails("DealExists".into()),
        }
        if crate::protocol::recover_deal_signer(&id, signature).ok() != Some(deal.provider) {
            return CreateCheck::ProviderFault(ProviderFault::BadSignature);
        }
        if self.escrow.get(&deal.provider).is_some_and(|free| *free < deal.collateral) {
            return CreateCheck::ProviderFault(ProviderFault::EscrowShort);
        }
        CreateCheck::Passes
    }

    // The mediators of `id` still drawable.
    fn untried(&self, id: B256) -> Vec<Address> {
        let named = self.deals.get(&id).and_then(|(_, t)| t.as_ref()).map(|t| t.mediators.clone());
        let out = self.excluded.get(&id).cloned().unwrap_or_default();
        named.unwrap_or_else(|| vec![MEDIATOR]).into_iter().filter(|m| !out.contains(m)).collect()
    }
}

/// A tiny `DcnDeals` with a clock the test sets.
pub struct FakeChain {
    account: Address,
    state: Mutex<ChainState>,
}

fn reverted(what: &str) -> ChainError {
    ChainError::Reverted { what: what.into(), tx: B256::ZERO }
}

fn view_of(state: DealState, deadline: u64, result_hash: B256, mediator: Address) -> DealView {
    DealView {
        result_hash,
        mediator,
        case: DcnDeals::Case { resultHash: result_hash, ..empty_case() },
        ..DealView { state, deadline, ..DealView::none() }
    }
}

impl FakeChain {
    pub fn new(account: Address) -> Self {
        Self { account, state: Mutex::new(ChainState { now: 1_000, ..Default::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChainState> {
        self.state.lock().unwrap()
    }

    pub fn set_now(&self, now: u64) {
        self.lock().now = now;
    }

    pub fn advance(&self, secs: u64) {
        self.lock().now += secs;
    }

    pub fn set_head(&self, head: u64) {
        self.lock().head = head;
    }

    pub fn push_log(&self, log: Log) {
        self.lock().logs.push(log);
    }

    /// The next `n` reads fail as if the node were down.
    pub fn fail_reads(&self, n: u32) {
        self.lock().fail_reads = n;
    }

    /// The next accepted (or unjudged) result is drawn for an audit.
    pub fn audit_next(&self) {
        self.lock().audit_next = true;
    }

    /// The network's rules the chain reports.
    pub fn set_rules(&self, rules: NetworkRules) {
        self.lock().rules = Some(rules);
    }

    /// Puts deal `id` in `state` with `deadline`, as if it happened elsewhere.
    pub fn put(&self, id: B256, state: DealState, deadline: u64, result_hash: B256) {
        let mut s = self.lock();
        let terms = s.deals.get(&id).and_then(|(_, t)| t.clone());
        s.deals.insert(id, (view_of(state, deadline, result_hash, MEDIATOR), terms));
    }

    /// Creates `deal` on chain now (as its job creator would).
    pub fn create(&self, deal: &DcnDeals::Deal) -> B256 {
        let id = deal_id(deal, &domain(CHAIN_ID, DEALS));
        let mut s = self.lock();
        let view = view_of(DealState::Created, s.now + deal.resultTimeout, B256::ZERO, Address::ZERO);
        s.deals.insert(id, (view, Some(deal.clone())));
        id
    }

    /// Deal `id` as a party knows it (its terms as created here).
    pub fn dref(&self, id: B256) -> DealRef {
        let deal = self.lock().deals.get(&id).and_then(|(_, t)| t.clone()).expect("a deal created on the fake chain");
        DealRef { id, deal, since_block: 0 }
    }

    pub fn view(&self, id: B256) -> DealView {
        self.lock().deals.get(&id).map(|(v, _)| v.clone()).unwrap_or_else(DealView::none)
    }

    pub fn txs(&self) -> Vec<Tx> {
        self.lock().txs.clone()
    }

    pub fn count(&self, f: impl Fn(&Tx) -> bool) -> usize {
        self.lock().txs.iter().filter(|t| f(t)).count()
    }

    /// Sets `account`'s free escrow (accounts not set have enough for any deal).
    pub fn set_escrow(&self, account: Address, free: U256) {
        self.lock().escrow.insert(account, free);
    }

    /// How many times `check_create` was asked.
    pub fn checks(&self) -> u32 {
        self.lock().checks
    }

    pub fn put_request(&self, id: U256, request: RequestView) {
        self.lock().requests.insert(id, request);
    }

    /// The next `n` transactions revert.
    pub fn fail_sends(&self, n: u32) {
        self.lock().fail_sends = n;
    }

    fn read(&self) -> Result<std::sync::MutexGuard<'_, ChainState>, ChainError> {
        let mut s = self.lock();
        if s.fail_reads > 0 {
            s.fail_reads -= 1;
            return Err(ChainError::Unreachable { url: "fake".into(), reason: "down".into() });
        }
        Ok(s)
    }

    fn transition(
        &self,
        id: B256,
        what: &str,
        tx: Tx,
        f: impl FnOnce(&mut DealView, u64, Option<&DcnDeals::Deal>, &mut bool) -> bool,
    ) -> Result<B256, ChainError> {
        let mut s = self.lock();
        if s.fail_sends > 0 {
            s.fail_sends -= 1;
            return Err(reverted(what));
        }
        let now = s.now;
        let mut audit = s.audit_next;
        let Some((view, terms)) = s.deals.get_mut(&id) else { return Err(reverted(what)) };
        if !f(view, now, terms.as_ref(), &mut audit) {
            return Err(reverted(what));
        }
        s.audit_next = audit;
        s.txs.push(tx);
        Ok(B256::random())
    }
}

fn timeout_of(terms: Option<&DcnDeals::Deal>, pick: fn(&DcnDeals::Deal) -> u64) -> u64 {
    terms.map(pick).unwrap_or(100)
}

// An accepted or unjudged result: an audit if one is drawn, else `paid`.
fn judge(v: &mut DealView, now: u64, t: Option<&DcnDeals::Deal>, audit: &mut bool, paid: DealState) {
    if std::mem::take(audit) {
        v.state = DealState::Audited;
        v.flags = FLAG_AUDIT;
        v.mediator = Address::ZERO;
        v.deadline = now + timeout_of(t, |d| d.mediationTimeout);
    } else {
        v.state = paid;
    }
}

#[async_trait]
impl DealsChain for FakeChain {
    fn account(&self) -> Address {
        self.account
    }

    async fn state(&self, id: B256) -> Result<DealView, ChainError> {
        Ok(self.read()?.deals.get(&id).map(|(v, _)| v.clone()).unwrap_or_else(DealView::none))
    }

    async fn deal(&self, deal: &DealRef) -> Result<DealView, ChainError> {
        self.state(deal.id).await
    }

    async fn now(&self) -> Result<u64, ChainError> {
        Ok(self.read()?.now)
    }

    async fn block_time(&self) -> Result<u64, ChainError> {
        Ok(self.read()?.now)
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.read()?.head)
    }

    async fn rules(&self) -> Result<NetworkRules, ChainError> {
        let s = self.read()?;
        Ok(s.rules.unwrap_or(NetworkRules {
            min_mediators: 1,
            min_audit_ppm: 0,
            appeal_window: 100,
            min_mediation_fee: U256::ZERO,
            silence_slash: U256::from(1),
            min_bond: U256::from(50),
            appeal_fee: U256::from(2),
        }))
    }

    async fn ensure_free_escrow(&self, need: U256) -> Result<U256, ChainError> {
        let mut s = self.lock();
        if s.free >= need {
            return Ok(U256::ZERO);
        }
        let short = need - s.free;
        s.free = need;
        s.txs.push(Tx::Deposit(short));
        Ok(short)
    }

    async fn ensure_bond(&self, need: U256) -> Result<U256, ChainError> {
        let mut s = self.lock();
        if s.bond >= need {
            return Ok(U256::ZERO);
        }
        let short = need - s.bond;
        s.bond = need;
        s.txs.push(Tx::Bond(short));
        Ok(short)
    }

    /// As `AlloyChain`: the job creator's escrow is topped up to the price first, then
    /// `createDeal` goes through or reverts in its gas estimate (nothing sent).
    async fn create_deal(&self, deal: &DcnDeals::Deal, signature: Bytes) -> Result<Sent, ChainError> {
        self.ensure_free_escrow(deal.price + deal.auditFee).await?;
        match self.lock().creation(deal, &signature) {
            CreateCheck::Passes => {}
            CreateCheck::ProviderFault(fault) => return Err(ChainError::ProviderFault(fault)),
            CreateCheck::Fails(why) => return Err(reverted(&why)),
        }
        let id = self.create(deal);
        let mut s = self.lock();
        s.txs.push(Tx::Create(id));
        Ok(Sent { tx: B256::random(), block: s.head })
    }

    async fn check_create(&self, deal: &DcnDeals::Deal, signature: &Bytes) -> Result<CreateCheck, ChainError> {
        let mut s = self.read()?;
        s.checks += 1;
        Ok(s.creation(deal, signature))
    }

    async fn submit_result(&self, deal: &DealRef, result_hash: B256) -> Result<B256, ChainError> {
        self.transition(deal.id, "submitResult", Tx::Submit(deal.id, result_hash), |v, now, t, _| {
            let ok = v.state == DealState::Created && now <= v.deadline;
            if ok {
                *v = view_of(
                    DealState::ResultSubmitted,
                    now + timeout_of(t, |d| d.judgeTimeout),
                    result_hash,
                    v.mediator,
                );
            }
            ok
        })
    }

    async fn accept_result(&self, deal: &DealRef) -> Result<B256, ChainError> {
        self.transition(deal.id, "acceptResult", Tx::Accept(deal.id), |v, now, t, audit| {
            let ok = v.state == DealState::ResultSubmitted;
            if ok {
                judge(v, now, t, audit, DealState::Accepted);
            }
            ok
        })
    }

    async fn challenge(&self, deal: &DealRef) -> Result<B256, ChainError> {
        self.transition(deal.id, "challenge", Tx::Challenge(deal.id), |v, now, t, _| {
            let ok = v.state == DealState::ResultSubmitted && now <= v.deadline;
            if ok {
                v.state = DealState::Challenged;
                v.deadline = now + timeout_of(t, |d| d.mediationTimeout);
                v.mediator = Address::ZERO;
            }
            ok
        })
    }

    /// Draws the first mediator not excluded (the real draw is random).
    async fn draw(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let first = self.lock().untried(deal.id).first().copied();
        self.transition(deal.id, "draw", Tx::Draw(deal.id), |v, now, t, _| {
            let ok = v.state.is_dispute();
            if ok && v.mediator.is_zero() {
                v.mediator = first.unwrap_or_default();
                v.deadline = now + timeout_of(t, |d| d.mediationTimeout);
            }
            ok
        })
    }

    async fn mediate(&self, deal: &DealRef, provider_honest: bool) -> Result<B256, ChainError> {
        let me = self.account;
        self.transition(deal.id, "mediate", Tx::Mediate(deal.id, provider_honest), |v, now, _, _| {
            let ok = v.state.is_dispute() && v.mediator == me && now <= v.deadline;
            if ok {
                v.state = if provider_honest { DealState::MediatedHonest } else { DealState::MediatedDishonest };
                v.flags = (v.flags & FLAG_AUDIT) | if provider_honest { FLAG_HONEST } else { 0 };
                v.case.ruledBy = me;
                v.mediator = Address::ZERO;
                v.deadline = now + 100;
            }
            ok
        })
    }

    async fn appeal(&self, deal: &DealRef) -> Result<B256, ChainError> {
        self.transition(deal.id, "appeal", Tx::Appeal(deal.id), |v, now, t, _| {
            let ok = v.state.is_mediated() && v.flags & FLAG_APPEAL_DONE == 0 && now <= v.deadline;
            if ok {
                if v.state == DealState::MediatedHonest {
                    v.flags |= FLAG_APPEAL_BY_JOB_CREATOR;
                }
                v.state = DealState::Appealed;
                v.mediator = Address::ZERO;
                v.deadline = now + timeout_of(t, |d| d.mediationTimeout);
            }
            ok
        })
    }

    async fn draw_appeal(&self, deal: &DealRef) -> Result<B256, ChainError> {
        self.transition(deal.id, "drawAppeal", Tx::DrawAppeal(deal.id), |v, now, t, _| {
            let ok = v.state == DealState::Appealed;
            if ok && v.mediator.is_zero() {
                v.mediator = APPEAL_MEDIATOR;
                v.case.appealMediator = APPEAL_MEDIATOR;
                v.deadline = now + timeout_of(t, |d| d.mediationTimeout);
            }
            ok
        })
    }

    async fn rule_appeal(&self, deal: &DealRef, provider_honest: bool) -> Result<B256, ChainError> {
        let me = self.account;
        self.transition(deal.id, "ruleAppeal", Tx::RuleAppeal(deal.id, provider_honest), |v, now, _, _| {
            let ok = v.state == DealState::Appealed && v.mediator == me && now <= v.deadline;
            if ok {
                let first_honest = v.flags & FLAG_HONEST != 0;
                v.state = if first_honest { DealState::MediatedHonest } else { DealState::MediatedDishonest };
                v.flags |= FLAG_APPEAL_DONE | if provider_honest != first_honest { FLAG_OVERTURNED } else { 0 };
                v.mediator = Address::ZERO;
            }
            ok
        })
    }

    /// As the contract: a silent drawn mediator of a challenge is excluded and another
    /// round starts while any is left; then (and at once for an audit) the result stands.
    /// An appeal past its deadline lapses: the verdict stands.
    async fn timeout(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let id = deal.id;
        let (missed, left) = {
            let s = self.lock();
            let disputed = s.deals.get(&id).filter(|(v, _)| v.state.is_dispute());
            // The drawn mediator, or the one the round's block draws if nobody asked.
            let drawn = disputed.map(|(v, _)| v.mediator).filter(|m| !m.is_zero());
            let missed = drawn.or_else(|| disputed.and_then(|_| s.untried(id).first().copied()));
            (missed, s.untried(id).len() - usize::from(missed.is_some()))
        };
        let tx = self.transition(id, "timeout", Tx::Timeout(id), |v, now, t, audit| {
            if now <= v.deadline {
                return false;
            }
            match v.state {
                DealState::Created => v.state = DealState::TimedOutNoResult,
                DealState::ResultSubmitted => judge(v, now, t, audit, DealState::TimedOutAccepted),
                DealState::Challenged if left > 0 => {
                    v.mediator = Address::ZERO;
                    v.deadline = now + timeout_of(t, |d| d.mediationTimeout);
                }
                DealState::Challenged | DealState::Audited => v.state = DealState::TimedOutNoVerdict,
                DealState::Appealed => {
                    v.state = if v.flags & FLAG_HONEST != 0 {
                        DealState::MediatedHonest
                    } else {
                        DealState::MediatedDishonest
                    };
                    v.flags |= FLAG_APPEAL_DONE;
                    v.mediator = Address::ZERO;
                }
                _ => return false,
            }
            true
        })?;
        if let Some(m) = missed {
            self.lock().excluded.entry(id).or_default().push(m);
        }
        Ok(tx)
    }
}

#[async_trait]
impl BoardChain for FakeChain {
    async fn operator(&self) -> Result<Address, ChainError> {
        Ok(self.account)
    }

    async fn request(&self, id: U256) -> Result<RequestView, ChainError> {
        self.read()?.requests.get(&id).cloned().ok_or_else(|| reverted("getRequest"))
    }

    async fn claim(&self, id: U256, deal: &DealRef) -> Result<B256, ChainError> {
        let mut s = self.lock();
        let r = s.requests.get_mut(&id).ok_or_else(|| reverted("claim"))?;
        if r.status != RequestStatus::Open {
            return Err(reverted("claim"));
        }
        r.deal = deal.id;
        s.txs.push(Tx::Claim(id, deal.id));
        Ok(B256::random())
    }

    async fn deliver_result(&self, id: U256, deal: &DealRef) -> Result<B256, ChainError> {
        let mut s = self.lock();
        let r = s.requests.get_mut(&id).ok_or_else(|| reverted("deliverResult"))?;
        if r.status != RequestStatus::Open {
            return Err(reverted("deliverResult"));
        }
        r.status = RequestStatus::Delivered;
        s.txs.push(Tx::Deliver(id, deal.id));
        Ok(B256::random())
    }
}

#[async_trait]
impl LogSource for FakeChain {
    async fn head(&self) -> Result<u64, ChainError> {
        Ok(self.read()?.head)
    }

    async fn logs(&self, _filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        let s = self.read()?;
        Ok(s.logs.iter().filter(|l| l.block_number.is_some_and(|b| (from..=to).contains(&b))).cloned().collect())
    }
}
