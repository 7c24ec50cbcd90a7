//! What the roles need of the chain, as traits with domain verbs: [`DealsChain`] (read a
//! deal, the chain's clock, escrow and every deal transaction), [`BoardChain`] (the job
//! board's requests) and [`LogSource`] (contract logs for followers). [`AlloyChain`] is the
//! implementation over a real node; the roles' unit tests use fakes.
//!
//! Every transaction method waits for its receipt and fails if it reverted, returning the
//! transaction hash.

use super::bindings::{DcnDeals, DcnJobBoard, DcnToken};
use super::deals::{provider_fault, CreateCheck};
use super::heads::Heads;
use super::state::{DealState, RequestStatus};
use super::{ChainClient, ChainError, Contracts};
use crate::units::format_amount;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use async_trait::async_trait;

/// A deal as the chain holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealView {
    /// Where it is.
    pub state: DealState,
    /// Deadline of the current waiting state, unix seconds (meaningless once final).
    pub deadline: u64,
    /// The submitted result hash (zero before).
    pub result_hash: B256,
    /// The mediator drawn for the current challenge round; zero before a challenge and
    /// until someone calls `draw`.
    pub mediator: Address,
}

impl DealView {
    /// A deal the chain does not have.
    pub fn none() -> Self {
        Self { state: DealState::None, deadline: 0, result_hash: B256::ZERO, mediator: Address::ZERO }
    }

    /// Whether the deadline of its waiting state passed at `now` (deadlines are inclusive:
    /// `timeout` is allowed from `deadline + 1`).
    pub fn past_deadline(&self, now: u64) -> bool {
        self.state.has_deadline() && now > self.deadline
    }

    /// Whether it is challenged and waits for someone to draw its mediator before the
    /// round's deadline.
    pub fn awaits_draw(&self, now: u64) -> bool {
        self.state == DealState::Challenged && self.mediator.is_zero() && !self.past_deadline(now)
    }
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

/// The `DcnDeals` contract, as a party to deals sees it.
#[async_trait]
pub trait DealsChain: Send + Sync {
    /// The account that signs the transactions.
    fn account(&self) -> Address;
    /// Wakes on each new block, so a wait for the next state ends when the chain changes
    /// (none by default: waits last their whole time).
    fn heads(&self) -> Heads {
        Heads::none()
    }
    /// Deal `id` as stored now ([`DealView::none`] if it was never created).
    async fn deal(&self, id: B256) -> Result<DealView, ChainError>;
    /// The time the next block will carry, about: deadlines are compared with it.
    async fn now(&self) -> Result<u64, ChainError>;
    /// The latest block's timestamp. The chain has passed a time for certain only once a
    /// block carries a later one: until then a block producer whose clock lags may still
    /// include a transaction that the time forbids.
    async fn block_time(&self) -> Result<u64, ChainError>;
    /// Tops this account's free escrow up to `need` (approving and depositing the
    /// shortfall); returns what was deposited. Concurrent jobs of one account take turns
    /// (`queue`), so no top-up reads a balance another is about to spend.
    async fn ensure_free_escrow(&self, need: U256) -> Result<U256, ChainError>;
    /// `createDeal` with the provider's signature; as its job creator, first tops the free
    /// escrow up to the price, in the same escrow turn. A revert by the provider's doing is
    /// [`ChainError::ProviderFault`].
    async fn create_deal(&self, deal: &DcnDeals::Deal, signature: Bytes) -> Result<B256, ChainError>;
    /// What `createDeal(deal, signature)` sent by the deal's job creator would do now: a call
    /// at the latest block, nothing sent. The job creator asks before creating a signed
    /// deal, and the solver asks before it believes a job creator's report that one failed
    /// by its provider's doing (THREATS N3).
    async fn check_create(&self, deal: &DcnDeals::Deal, signature: &Bytes) -> Result<CreateCheck, ChainError>;
    /// `submitResult`, as the deal's provider.
    async fn submit_result(&self, id: B256, result_hash: B256) -> Result<B256, ChainError>;
    /// `acceptResult`, as the deal's job creator.
    async fn accept_result(&self, id: B256) -> Result<B256, ChainError>;
    /// `challenge`, as the deal's job creator (pays the mediation fee, topping the free
    /// escrow up to it first, in one escrow turn).
    async fn challenge(&self, id: B256) -> Result<B256, ChainError>;
    /// `draw`: draws the mediator of a challenged deal's round (anyone may, from the block
    /// after the challenge; drawing again changes nothing).
    async fn draw(&self, id: B256) -> Result<B256, ChainError>;
    /// The mediators deal `id` names, in order (empty if it does not exist).
    async fn mediators(&self, id: B256) -> Result<Vec<Address>, ChainError>;
    /// `mediate`, as the deal's drawn mediator.
    async fn mediate(&self, id: B256, provider_honest: bool) -> Result<B256, ChainError>;
    /// `timeout`: settles a deal whose deadline passed, by the rule of its state.
    async fn timeout(&self, id: B256) -> Result<B256, ChainError>;
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
    async fn claim(&self, id: U256, deal: B256) -> Result<B256, ChainError>;
    /// `deliverResult`: pays the operator and calls the requester back.
    async fn deliver_result(&self, id: U256, deal: B256, result_hash: B256) -> Result<B256, ChainError>;
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

/// The chain through alloy: a connected account and the deployment's contracts.
#[derive(Debug, Clone)]
pub struct AlloyChain {
    /// The connection, signing as this account.
    pub client: ChainClient,
    /// The deployment.
    pub contracts: Contracts,
}

fn call_err(what: impl Into<String>) -> impl FnOnce(alloy::contract::Error) -> ChainError {
    let what = what.into();
    move |source| ChainError::call(what, source)
}

impl AlloyChain {
    /// The chain of `client` with `contracts`.
    pub fn new(client: ChainClient, contracts: Contracts) -> Self {
        Self { client, contracts }
    }

    fn deals(&self) -> DcnDeals::DcnDealsInstance<&alloy::providers::DynProvider> {
        DcnDeals::new(self.contracts.deals, &self.client.provider)
    }

    /// Free and locked escrow of `account`.
    pub async fn escrow_of(&self, account: Address) -> Result<(U256, U256), ChainError> {
        let e = self.deals().escrowOf(account).call().await.map_err(call_err("reading the escrow balance"))?;
        Ok((e.free, e.locked))
    }

    /// Tops the free escrow up to `need`, in the caller's escrow turn.
    async fn top_up(&self, need: U256) -> Result<U256, ChainError> {
        let me = self.client.from;
        let (free, _) = self.escrow_of(me).await?;
        if free >= need {
            return Ok(U256::ZERO);
        }
        let short = need - free;
        let token = DcnToken::new(self.contracts.token, &self.client.provider);
        let balance = token.balanceOf(me).call().await.map_err(call_err("reading the token balance"))?;
        if balance < short {
            return Err(ChainError::TokensShort {
                account: me,
                have: format_amount(balance),
                need: format_amount(short),
                network: self.client.network.name.clone(),
            });
        }
        let allowance =
            token.allowance(me, self.contracts.deals).call().await.map_err(call_err("reading the token allowance"))?;
        if allowance < short {
            self.client.send("approving DcnDeals to take tokens", token.approve(self.contracts.deals, short)).await?;
        }
        self.tx("depositing into escrow", self.deals().deposit(short)).await?;
        Ok(short)
    }

    async fn tx<P: Provider, D: alloy::contract::CallDecoder>(
        &self,
        what: &str,
        call: alloy::contract::CallBuilder<P, D>,
    ) -> Result<B256, ChainError> {
        Ok(self.client.send(what, call).await?.transaction_hash)
    }
}

#[async_trait]
impl DealsChain for AlloyChain {
    fn account(&self) -> Address {
        self.client.from
    }

    fn heads(&self) -> Heads {
        self.client.heads.heads()
    }

    async fn deal(&self, id: B256) -> Result<DealView, ChainError> {
        let info = self.deals().getDeal(id).call().await.map_err(call_err(format!("reading deal {id}")))?;
        Ok(DealView {
            state: DealState::from_chain(info.state)?,
            deadline: info.deadline,
            result_hash: info.resultHash,
            mediator: info.mediator,
        })
    }

    async fn now(&self) -> Result<u64, ChainError> {
        // A chain that mines only on demand (anvil, geth --dev) has no new block until a
        // transaction comes, so the latest block alone would never pass a deadline.
        let block = self
            .client
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|source| ChainError::rpc("reading the latest block", source))?;
        Ok(block.map(|b| b.header.timestamp).unwrap_or_default().max(crate::clock::now_secs()))
    }

    async fn block_time(&self) -> Result<u64, ChainError> {
        let block = self
            .client
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|source| ChainError::rpc("reading the latest block", source))?;
        Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
    }

    async fn ensure_free_escrow(&self, need: U256) -> Result<U256, ChainError> {
        let _turn = self.client.escrow_turn().await?;
        self.top_up(need).await
    }

    async fn create_deal(&self, deal: &DcnDeals::Deal, signature: Bytes) -> Result<B256, ChainError> {
        // Another job of this account may have locked what was deposited for this one.
        let _turn = self.client.escrow_turn().await?;
        if deal.jobCreator == self.client.from {
            self.top_up(deal.price).await?;
        }
        self.tx("creating the deal", self.deals().createDeal(deal.clone(), signature)).await.map_err(|e| match &e {
            // The node refuses to estimate the gas of a transaction that reverts: nothing
            // was sent, and the revert says whose doing it is.
            ChainError::Call { source, .. } => {
                match source
                    .as_decoded_interface_error::<DcnDeals::DcnDealsErrors>()
                    .and_then(|r| provider_fault(&r, deal))
                {
                    Some(fault) => ChainError::ProviderFault(fault),
                    None => e,
                }
            }
            _ => e,
        })
    }

    async fn check_create(&self, deal: &DcnDeals::Deal, signature: &Bytes) -> Result<CreateCheck, ChainError> {
        let deals = self.deals();
        let call = deals.createDeal(deal.clone(), signature.clone()).from(deal.jobCreator);
        let error = match call.call().await {
            Ok(_) => return Ok(CreateCheck::Passes),
            Err(e) => e,
        };
        if let Some(revert) = error.as_decoded_interface_error::<DcnDeals::DcnDealsErrors>() {
            return Ok(match provider_fault(&revert, deal) {
                Some(fault) => CreateCheck::ProviderFault(fault),
                None => CreateCheck::Fails(format!("{revert:?}")),
            });
        }
        match error.as_revert_data() {
            Some(data) => Ok(CreateCheck::Fails(format!("reverted with {data}"))),
            None => Err(ChainError::call("checking whether the deal can be created", error)),
        }
    }

    async fn submit_result(&self, id: B256, result_hash: B256) -> Result<B256, ChainError> {
        self.tx("submitting the result", self.deals().submitResult(id, result_hash)).await
    }

    async fn accept_result(&self, id: B256) -> Result<B256, ChainError> {
        self.tx("accepting the result", self.deals().acceptResult(id)).await
    }

    async fn challenge(&self, id: B256) -> Result<B256, ChainError> {
        let _turn = self.client.escrow_turn().await?;
        let info = self.deals().getDeal(id).call().await.map_err(call_err(format!("reading deal {id}")))?;
        self.top_up(info.mediationFee).await?;
        self.tx("challenging the result", self.deals().challenge(id)).await
    }

    async fn draw(&self, id: B256) -> Result<B256, ChainError> {
        self.tx("drawing the mediator", self.deals().draw(id)).await
    }

    async fn mediators(&self, id: B256) -> Result<Vec<Address>, ChainError> {
        self.deals().mediatorsOf(id).call().await.map_err(call_err(format!("reading deal {id}'s mediators")))
    }

    async fn mediate(&self, id: B256, provider_honest: bool) -> Result<B256, ChainError> {
        self.tx("sending the verdict", self.deals().mediate(id, provider_honest)).await
    }

    async fn timeout(&self, id: B256) -> Result<B256, ChainError> {
        self.tx("settling the deal by timeout", self.deals().timeout(id)).await
    }
}

#[async_trait]
impl BoardChain for AlloyChain {
    async fn operator(&self) -> Result<Address, ChainError> {
        DcnJobBoard::new(self.contracts.job_board, &self.client.provider)
            .operator()
            .call()
            .await
            .map_err(call_err("reading the job board's operator"))
    }

    async fn request(&self, id: U256) -> Result<RequestView, ChainError> {
        let r = DcnJobBoard::new(self.contracts.job_board, &self.client.provider)
            .getRequest(id)
            .call()
            .await
            .map_err(call_err(format!("reading job request {id}")))?;
        Ok(RequestView {
            status: RequestStatus::from_chain(r.status)?,
            requester: r.requester,
            operator: r.operator,
            module: r.module,
            inputs: r.inputs,
            payment: r.payment,
            deadline: r.deadline,
            deal: r.dealId,
        })
    }

    async fn claim(&self, id: U256, deal: B256) -> Result<B256, ChainError> {
        let board = DcnJobBoard::new(self.contracts.job_board, &self.client.provider);
        self.tx("claiming the job request with its deal", board.claim(id, deal)).await
    }

    async fn deliver_result(&self, id: U256, deal: B256, result_hash: B256) -> Result<B256, ChainError> {
        let board = DcnJobBoard::new(self.contracts.job_board, &self.client.provider);
        self.tx("delivering the result to the job board", board.deliverResult(id, deal, result_hash)).await
    }
}

#[async_trait]
impl LogSource for AlloyChain {
    async fn head(&self) -> Result<u64, ChainError> {
        self.client.block_number().await
    }

    fn heads(&self) -> Heads {
        self.client.heads.heads()
    }

    async fn logs(&self, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        let filter = filter.clone().from_block(from).to_block(to);
        self.client.provider.get_logs(&filter).await.map_err(|source| ChainError::rpc("reading contract logs", source))
    }
}
