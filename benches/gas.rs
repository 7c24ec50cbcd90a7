//! Gas per job, measured from real receipts on a local anvil: `name value unit` per line.
//!
//! Each path creates a fresh deal (deposits and bonds excluded) and sums the gas of the
//! transactions that take it to a final state, through the same [`AlloyChain`] calls the
//! roles make. Goals (issue 26): `gas_happy_path` ≤ 150,000 and `gas_challenge_honest`
//! ≤ 250,000.

use alloy::primitives::{utils::parse_ether, Address, B256, U256};
use alloy::providers::Provider;
use dcn::chain::bindings::{DcnDeals, DcnJobBoard, DcnToken};
use dcn::chain::deals::{deal_id, domain, sign_deal};
use dcn::chain::deploy::DeployOptions;
use dcn::chain::{self, AlloyChain, BoardChain, ChainClient, DealRef, DealsChain, DevRole, NetworkRules, Role};
use dcn::config::ResolvedNetwork;
use eyre::Result;

/// A second mediator, drawn for appeals: the development mnemonic's index 5.
const APPEAL_MEDIATOR_INDEX: u32 = 5;

struct Bench {
    admin: AlloyChain,
    jc: AlloyChain,
    provider: AlloyChain,
    mediator: AlloyChain,
    appeal_mediator: AlloyChain,
    nonce: u64,
}

impl Bench {
    async fn gas(&self, tx: B256) -> Result<u64> {
        let r = self.admin.client.provider.get_transaction_receipt(tx).await?;
        Ok(r.ok_or_else(|| eyre::eyre!("no receipt for {tx}"))?.gas_used)
    }

    async fn deal(&mut self, audit_ppm: u32) -> Result<DcnDeals::Deal> {
        self.nonce += 1;
        let now = self.admin.now().await?;
        Ok(DcnDeals::Deal {
            jobCreator: self.jc.client.from,
            provider: self.provider.client.from,
            solver: DevRole::Solver.address(),
            mediators: vec![self.mediator.client.from],
            price: parse_ether("1")?,
            collateral: parse_ether("10")?,
            mediationFee: parse_ether("0.5")?,
            auditFee: parse_ether("1")?,
            auditPpm: audit_ppm,
            resultTimeout: 600,
            judgeTimeout: 600,
            mediationTimeout: 600,
            createDeadline: now + 600,
            jobHash: B256::repeat_byte(0x11),
            nonce: U256::from(self.nonce),
        })
    }

    /// A new deal that is audited with `audit_ppm` parts per million.
    async fn create(&mut self, audit_ppm: u32) -> Result<(DealRef, u64)> {
        let d = self.deal(audit_ppm).await?;
        self.create_by(&self.jc, d).await
    }

    /// Deal `d` created by `jc`, its job creator.
    async fn create_by(&self, jc: &AlloyChain, d: DcnDeals::Deal) -> Result<(DealRef, u64)> {
        let dom = domain(jc.client.network.chain_id, jc.contracts.deals);
        let sig = sign_deal(&DevRole::Provider.signer(), &d, &dom).await?;
        let id = deal_id(&d, &dom);
        let sent = jc.create_deal(&d, sig).await?;
        Ok((DealRef { id, deal: d, since_block: sent.block }, self.gas(sent.tx).await?))
    }

    /// Created and submitted.
    async fn submitted(&mut self, audit_ppm: u32) -> Result<(DealRef, u64)> {
        let (d, create) = self.create(audit_ppm).await?;
        let submit = self.gas(self.provider.submit_result(&d, B256::repeat_byte(0x22)).await?).await?;
        Ok((d, create + submit))
    }

    /// Created, submitted, challenged and its mediator drawn.
    async fn drawn(&mut self) -> Result<(DealRef, u64)> {
        let (d, so_far) = self.submitted(0).await?;
        let challenge = self.gas(self.jc.challenge(&d).await?).await?;
        let draw = self.gas(self.mediator.draw(&d).await?).await?;
        Ok((d, so_far + challenge + draw))
    }

    async fn later(&self, secs: u64) -> Result<()> {
        let p = &self.admin.client.provider;
        p.raw_request::<_, serde_json::Value>("evm_increaseTime".into(), [secs]).await?;
        p.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
        Ok(())
    }

    async fn timeout(&self, d: &DealRef) -> Result<u64> {
        self.later(601).await?;
        self.gas(self.admin.timeout(d).await?).await
    }
}

fn network(rpc_url: String) -> ResolvedNetwork {
    ResolvedNetwork { name: "bench".into(), rpc_url, chain_id: 1337, dev_accounts: true, registry: None }
}

#[tokio::main]
async fn main() -> Result<()> {
    let anvil = chain::anvil::spawn(1337, 0, None)?;
    let net = network(anvil.endpoint());
    let admin = chain::connect(&net, DevRole::Admin.signer()).await?;
    let appeal_key = alloy::signers::local::MnemonicBuilder::<alloy::signers::local::coins_bip39::English>::default()
        .phrase(chain::DEV_MNEMONIC)
        .index(APPEAL_MEDIATOR_INDEX)?
        .build()?;
    let data = tempfile::tempdir()?;
    let rules = NetworkRules {
        min_mediators: 1,
        min_audit_ppm: 0,
        appeal_window: 600,
        min_mediation_fee: parse_ether("0.1")?,
        silence_slash: parse_ether("1")?,
        min_bond: parse_ether("50")?,
        appeal_fee: parse_ether("2")?,
    };
    let options = DeployOptions {
        force: true,
        job_board_operator: DevRole::Solver.address(),
        cowsay_price: U256::from(1),
        job_board_min_payment: U256::from(1),
        job_board_min_timeout_secs: 600,
        approve: vec![(Role::Mediator, DevRole::Mediator.address()), (Role::Mediator, appeal_key.address())],
        rules,
    };
    let c = chain::deploy(&admin, data.path(), &options).await?.deployment.contracts;
    let mut accounts: Vec<(String, Address)> =
        [DevRole::JobCreator, DevRole::Provider, DevRole::Mediator, DevRole::Solver]
            .iter()
            .map(|r| (r.name().into(), r.address()))
            .collect();
    accounts.push(("appeal-mediator".into(), appeal_key.address()));
    let plan = chain::FundPlan {
        token: c.token,
        eth: parse_ether("1")?,
        tokens: parse_ether("10000")?,
        accounts,
        token_only: vec![],
    };
    chain::fund(&admin, &plan).await?;
    let role = |client: ChainClient| AlloyChain::new(client, c);
    let jc = role(chain::connect(&net, DevRole::JobCreator.signer()).await?);
    let provider = role(chain::connect(&net, DevRole::Provider.signer()).await?);
    let mediator = role(chain::connect(&net, DevRole::Mediator.signer()).await?);
    let appeal_mediator = role(chain::connect(&net, appeal_key).await?);
    jc.ensure_free_escrow(parse_ether("1000")?).await?;
    provider.ensure_free_escrow(parse_ether("1000")?).await?;
    mediator.ensure_bond(rules.min_bond).await?;
    appeal_mediator.ensure_bond(rules.min_bond).await?;
    let mut b = Bench { admin: role(admin), jc, provider, mediator, appeal_mediator, nonce: 0 };

    // Warm-up deal so that every escrow slot exists, as in a running network.
    let (d, _) = b.drawn().await?;
    b.mediator.mediate(&d, true).await?;

    let (d, create) = b.create(0).await?;
    let submit = b.gas(b.provider.submit_result(&d, B256::repeat_byte(0x22)).await?).await?;
    let accept = b.gas(b.jc.accept_result(&d).await?).await?;
    println!("gas_create_deal {create} gas");
    println!("gas_submit_result {submit} gas");
    println!("gas_accept_result {accept} gas");
    println!("gas_happy_path {} gas", create + submit + accept);

    // Drawn for audit (every result at 1,000,000 ppm): the mediator re-runs and rules.
    let (d, so_far) = b.submitted(1_000_000).await?;
    let accept = b.gas(b.jc.accept_result(&d).await?).await?;
    let draw = b.gas(b.mediator.draw(&d).await?).await?;
    let total = so_far + accept + draw + b.gas(b.mediator.mediate(&d, true).await?).await?;
    println!("gas_audit_honest {total} gas");

    for (name, honest) in [("gas_challenge_honest", true), ("gas_challenge_dishonest", false)] {
        let (d, so_far) = b.drawn().await?;
        println!("{name} {} gas", so_far + b.gas(b.mediator.mediate(&d, honest).await?).await?);
    }

    // A wrong verdict against the provider, appealed and overturned by a second mediator.
    let (d, so_far) = b.drawn().await?;
    let mediate = b.gas(b.mediator.mediate(&d, false).await?).await?;
    let appeal = b.gas(b.provider.appeal(&d).await?).await?;
    let draw = b.gas(b.appeal_mediator.draw_appeal(&d).await?).await?;
    let rule = b.gas(b.appeal_mediator.rule_appeal(&d, true).await?).await?;
    println!("gas_appeal_overturned {} gas", so_far + mediate + appeal + draw + rule);

    let (d, create) = b.create(0).await?;
    println!("gas_timeout_no_result {} gas", create + b.timeout(&d).await?);
    let (d, so_far) = b.submitted(0).await?;
    println!("gas_timeout_no_judgement {} gas", so_far + b.timeout(&d).await?);
    let (d, so_far) = b.drawn().await?;
    println!("gas_timeout_no_verdict {} gas", so_far + b.timeout(&d).await?);

    // The job board: a request that commits to its job, the operator's deal of that job
    // (created, submitted, accepted), its claim and its delivery with the client's callback.
    let operator = role(chain::connect(&net, DevRole::Solver.signer()).await?);
    operator.ensure_free_escrow(parse_ether("100")?).await?;
    let admin = &b.admin.client;
    let job = B256::repeat_byte(0x11);
    admin.send("approving the board", DcnToken::new(c.token, &admin.provider).approve(c.job_board, U256::MAX)).await?;
    let board = DcnJobBoard::new(c.job_board, &admin.provider);
    let inputs = vec!["Message=moo".to_string()];
    let request =
        admin.send("requestJob", board.requestJob("cowsay".into(), inputs, job, parse_ether("3")?, 3600)).await?;
    let request_id = board.requestCount().call().await?;
    let mut d = b.deal(0).await?;
    d.jobCreator = operator.client.from;
    let (d, _) = b.create_by(&operator, d).await?;
    b.provider.submit_result(&d, B256::repeat_byte(0x22)).await?;
    operator.accept_result(&d).await?;
    let claim = b.gas(operator.claim(request_id, &d).await?).await?;
    let deliver = b.gas(operator.deliver_result(request_id, &d).await?).await?;
    println!("gas_jobboard_request {} gas", request.gas_used);
    println!("gas_jobboard_claim {claim} gas");
    println!("gas_jobboard_deliver {deliver} gas");

    let d = b.deal(0).await?;
    let cancel =
        b.provider.client.send("cancelDeal", DcnDeals::new(c.deals, &b.provider.client.provider).cancelDeal(d)).await?;
    println!("gas_cancel_deal {} gas", cancel.gas_used);
    Ok(())
}
