//! [`AlloyChain`]: the chain traits of [`super::api`] over a real node, through alloy and
//! the contract bindings. Calls after a deal's creation pass its terms and its case, which
//! [`Cases`] rebuilds from the deal's events.

use super::api::{empty_case, terms_of, BoardChain, DealRef, DealView, DealsChain, LogSource, NetworkRules};
use super::api::{RequestView, Sent, FLAG_APPEAL_DONE};
use super::bindings::{DcnDeals, DcnJobBoard, DcnToken};
use super::case::{Cases, Logs};
use super::deals::{provider_fault, CreateCheck};
use super::heads::Heads;
use super::state::{DealState, RequestStatus};
use super::{ChainClient, ChainError, Contracts};
use crate::units::format_amount;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use async_trait::async_trait;
use std::sync::Arc;

/// The chain through alloy: a connected account and the deployment's contracts.
#[derive(Debug, Clone)]
pub struct AlloyChain {
    /// The connection, signing as this account.
    pub client: ChainClient,
    /// The deployment.
    pub contracts: Contracts,
    /// Deals' cases, as read so far.
    cases: Arc<Cases>,
}

fn call_err(what: impl Into<String>) -> impl FnOnce(alloy::contract::Error) -> ChainError {
    let what = what.into();
    move |source| ChainError::call(what, source)
}

#[async_trait]
impl Logs for AlloyChain {
    async fn latest(&self) -> Result<u64, ChainError> {
        self.client.block_number().await
    }

    async fn read(&self, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, ChainError> {
        self.logs(filter, from, to).await
    }
}

impl AlloyChain {
    /// The chain of `client` with `contracts`.
    pub fn new(client: ChainClient, contracts: Contracts) -> Self {
        Self { client, contracts, cases: Arc::default() }
    }

    fn deals(&self) -> DcnDeals::DcnDealsInstance<&alloy::providers::DynProvider> {
        DcnDeals::new(self.contracts.deals, &self.client.provider)
    }

    fn board(&self) -> DcnJobBoard::DcnJobBoardInstance<&alloy::providers::DynProvider> {
        DcnJobBoard::new(self.contracts.job_board, &self.client.provider)
    }

    /// Free and locked escrow of `account`.
    pub async fn escrow_of(&self, account: Address) -> Result<(U256, U256), ChainError> {
        let e = self.deals().escrowOf(account).call().await.map_err(call_err("reading the escrow balance"))?;
        Ok((e.free, e.locked))
    }

    /// The mediator bond of `account` and when it may leave (zero: it stays).
    pub async fn bond_of(&self, account: Address) -> Result<(U256, u64), ChainError> {
        let b = self.deals().bondOf(account).call().await.map_err(call_err("reading the mediator bond"))?;
        Ok((b.amount, b.unbondAt))
    }

    /// The case of `deal`, from its events.
    async fn case(&self, deal: &DealRef) -> Result<DcnDeals::Case, ChainError> {
        self.cases.of(self, self.contracts.deals, deal.id, deal.since_block).await
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

    async fn slot(&self, id: B256) -> Result<DealView, ChainError> {
        let s = self.deals().getDeal(id).call().await.map_err(call_err(format!("reading deal {id}")))?;
        Ok(DealView {
            state: DealState::from_chain(s.state)?,
            deadline: s.deadline,
            mark: s.mark,
            flags: s.flags,
            drawn: s.drawn,
            result_hash: B256::ZERO,
            // `drawn` is an index into the deal's list, which a reader without it lacks.
            mediator: Address::ZERO,
            case: empty_case(),
        })
    }
}

/// Resolves a view read by `slot` against its deal: the drawn mediator's address, and the
/// case.
fn resolve(mut view: DealView, deal: &DealRef, case: DcnDeals::Case) -> DealView {
    let drawn = usize::from(view.drawn);
    view.mediator = match view.state {
        DealState::Appealed => case.appealMediator,
        s if s.is_dispute() && drawn > 0 => deal.deal.mediators.get(drawn - 1).copied().unwrap_or_default(),
        _ => Address::ZERO,
    };
    view.result_hash = case.resultHash;
    view.case = case;
    view
}

#[async_trait]
impl DealsChain for AlloyChain {
    fn account(&self) -> Address {
        self.client.from
    }

    fn heads(&self) -> Heads {
        self.client.heads.heads()
    }

    async fn state(&self, id: B256) -> Result<DealView, ChainError> {
        self.slot(id).await
    }

    async fn deal(&self, deal: &DealRef) -> Result<DealView, ChainError> {
        let view = self.slot(deal.id).await?;
        if view.state == DealState::None {
            return Ok(DealView::none());
        }
        // Before a result there is nothing to read; once settled and out of appeals, the
        // case is read a last time and forgotten.
        let case = if view.state == DealState::Created { empty_case() } else { self.case(deal).await? };
        let done = view.state.is_final() && (!view.state.is_mediated() || view.flags & FLAG_APPEAL_DONE != 0);
        if done {
            self.cases.forget(&deal.id);
        }
        Ok(resolve(view, deal, case))
    }

    async fn now(&self) -> Result<u64, ChainError> {
        // A chain that mines only on demand (anvil, geth --dev) has no new block until a
        // transaction comes, so the latest block alone would never pass a deadline.
        Ok(self.block_time().await?.max(crate::clock::now_secs()))
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

    async fn block_number(&self) -> Result<u64, ChainError> {
        self.client.block_number().await
    }

    async fn rules(&self) -> Result<NetworkRules, ChainError> {
        let p = self.deals().params().call().await.map_err(call_err("reading the network's rules"))?;
        Ok(NetworkRules {
            min_mediators: p.minMediators,
            min_audit_ppm: p.minAuditPpm,
            appeal_window: p.appealWindow,
            min_mediation_fee: U256::from(p.minMediationFee),
            silence_slash: U256::from(p.silenceSlash),
            min_bond: U256::from(p.minBond),
            appeal_fee: U256::from(p.appealFee),
        })
    }

    async fn ensure_free_escrow(&self, need: U256) -> Result<U256, ChainError> {
        let _turn = self.client.escrow_turn().await?;
        self.top_up(need).await
    }

    async fn ensure_bond(&self, need: U256) -> Result<U256, ChainError> {
        let _turn = self.client.escrow_turn().await?;
        let (bond, unbond_at) = self.bond_of(self.client.from).await?;
        if unbond_at != 0 {
            return Err(ChainError::WouldRevert(format!(
                "the mediator bond of {} is being withdrawn (from unix time {unbond_at}): a mediator that leaves is \
                 drawn no more; withdraw it then and post a new one",
                self.client.from
            )));
        }
        if bond >= need {
            return Ok(U256::ZERO);
        }
        let short = need - bond;
        self.top_up(short).await?;
        self.tx("posting the mediator bond", self.deals().postBond(short)).await?;
        Ok(short)
    }

    async fn create_deal(&self, deal: &DcnDeals::Deal, signature: Bytes) -> Result<Sent, ChainError> {
        // Another job of this account may have locked what was deposited for this one.
        let _turn = self.client.escrow_turn().await?;
        if deal.jobCreator == self.client.from {
            self.top_up(deal.price + deal.auditFee).await?;
        }
        let receipt =
            self.client.send("creating the deal", self.deals().createDeal(deal.clone(), signature)).await.map_err(
                |e| match &e {
                    // The node refuses to estimate the gas of a transaction that reverts:
                    // nothing was sent, and the revert says whose doing it is.
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
                },
            )?;
        Ok(Sent { tx: receipt.transaction_hash, block: receipt.block_number.unwrap_or_default() })
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

    async fn submit_result(&self, deal: &DealRef, result_hash: B256) -> Result<B256, ChainError> {
        self.tx("submitting the result", self.deals().submitResult(deal.id, deal.terms(), result_hash)).await
    }

    async fn accept_result(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        self.tx("accepting the result", self.deals().acceptResult(deal.id, deal.terms(), case)).await
    }

    async fn challenge(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let _turn = self.client.escrow_turn().await?;
        self.top_up(deal.deal.mediationFee).await?;
        self.tx("challenging the result", self.deals().challenge(deal.id, deal.terms(), case)).await
    }

    async fn draw(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let deals = self.deals();
        let call = deals.draw(deal.id, deal.terms(), case, deal.deal.mediators.clone());
        self.tx("drawing the mediator", call).await
    }

    async fn mediate(&self, deal: &DealRef, provider_honest: bool) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let deals = self.deals();
        let call = deals.mediate(deal.id, deal.terms(), case, deal.deal.mediators.clone(), provider_honest);
        self.tx("sending the verdict", call).await
    }

    async fn appeal(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let fee = self.rules().await?.appeal_fee;
        let _turn = self.client.escrow_turn().await?;
        self.top_up(fee).await?;
        self.tx("appealing the verdict", self.deals().appeal(deal.id, deal.terms(), case)).await
    }

    async fn draw_appeal(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        self.tx("drawing the appeal's mediator", self.deals().drawAppeal(deal.id, deal.terms(), case)).await
    }

    async fn rule_appeal(&self, deal: &DealRef, provider_honest: bool) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let deals = self.deals();
        let call = deals.ruleAppeal(deal.id, deal.terms(), case, provider_honest);
        self.tx("sending the appeal's verdict", call).await
    }

    async fn timeout(&self, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let deals = self.deals();
        let call = deals.timeout(deal.id, deal.terms(), case, deal.deal.mediators.clone());
        self.tx("settling the deal by timeout", call).await
    }
}

#[async_trait]
impl BoardChain for AlloyChain {
    async fn operator(&self) -> Result<Address, ChainError> {
        self.board().operator().call().await.map_err(call_err("reading the job board's operator"))
    }

    async fn request(&self, id: U256) -> Result<RequestView, ChainError> {
        let r = self.board().getRequest(id).call().await.map_err(call_err(format!("reading job request {id}")))?;
        Ok(RequestView {
            status: RequestStatus::from_chain(r.status)?,
            requester: r.requester,
            operator: r.operator,
            module: r.module,
            inputs: r.inputs,
            job_hash: r.jobHash,
            payment: r.payment,
            deadline: r.deadline,
            deal: r.dealId,
        })
    }

    async fn claim(&self, id: U256, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let terms = board_terms(&deal.deal);
        let board = self.board();
        let call = board.claim(id, deal.id, terms, board_case(case));
        self.tx("claiming the job request with its deal", call).await
    }

    async fn deliver_result(&self, id: U256, deal: &DealRef) -> Result<B256, ChainError> {
        let case = self.case(deal).await?;
        let terms = board_terms(&deal.deal);
        let board = self.board();
        let call = board.deliverResult(id, deal.id, terms, board_case(case));
        self.tx("delivering the result to the job board", call).await
    }
}

/// The job board's ABI names `DcnDeals` types of its own (`sol!` makes them in its module):
/// the same fields.
fn board_terms(deal: &DcnDeals::Deal) -> super::bindings::board::DcnDeals::Terms {
    let t = terms_of(deal);
    super::bindings::board::DcnDeals::Terms {
        jobCreator: t.jobCreator,
        provider: t.provider,
        price: t.price,
        collateral: t.collateral,
        mediationFee: t.mediationFee,
        auditFee: t.auditFee,
        auditPpm: t.auditPpm,
        judgeTimeout: t.judgeTimeout,
        mediationTimeout: t.mediationTimeout,
        mediators: t.mediators,
        jobHash: t.jobHash,
    }
}

fn board_case(c: DcnDeals::Case) -> super::bindings::board::DcnDeals::Case {
    super::bindings::board::DcnDeals::Case {
        resultHash: c.resultHash,
        excluded: c.excluded,
        ruledBy: c.ruledBy,
        appealMediator: c.appealMediator,
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
