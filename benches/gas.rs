//! Gas per job, measured from real receipts on a local anvil: `name value unit` per line.
//!
//! Each path creates a fresh deal (deposits excluded) and sums the gas of the
//! transactions that take it to a final state (a challenge includes the `draw` of its
//! mediator). Goal: `gas_happy_path` ≤ 250,000.

use alloy::primitives::{utils::parse_ether, Address, B256, U256};
use alloy::providers::Provider;
use dcn::chain::bindings::{DcnDeals, DcnToken};
use dcn::chain::deals::{deal_id, domain, sign_deal};
use dcn::chain::deploy::DeployOptions;
use dcn::chain::{self, ChainClient, DevRole};
use dcn::config::ResolvedNetwork;
use eyre::Result;

struct Bench {
    admin: ChainClient,
    jc: ChainClient,
    provider: ChainClient,
    mediator: ChainClient,
    deals: Address,
    nonce: u64,
}

impl Bench {
    async fn deal(&mut self) -> Result<DcnDeals::Deal> {
        self.nonce += 1;
        let latest = self.admin.provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await?;
        let now = latest.map(|b| b.header.timestamp).unwrap_or_default();
        Ok(DcnDeals::Deal {
            jobCreator: self.jc.from,
            provider: self.provider.from,
            solver: DevRole::Solver.address(),
            mediators: vec![self.mediator.from],
            price: parse_ether("1").unwrap_or_default(),
            collateral: parse_ether("2").unwrap_or_default(),
            mediationFee: parse_ether("0.5").unwrap_or_default(),
            resultTimeout: 600,
            judgeTimeout: 600,
            mediationTimeout: 600,
            createDeadline: now + 600,
            jobHash: B256::repeat_byte(0x11),
            nonce: U256::from(self.nonce),
        })
    }

    async fn create(&mut self) -> Result<(B256, u64)> {
        let d = self.deal().await?;
        let dom = domain(self.jc.network.chain_id, self.deals);
        let sig = sign_deal(&DevRole::Provider.signer(), &d, &dom).await?;
        let id = deal_id(&d, &dom);
        let r = self.jc.send("createDeal", DcnDeals::new(self.deals, &self.jc.provider).createDeal(d, sig)).await?;
        Ok((id, r.gas_used))
    }

    async fn submit(&self, id: B256) -> Result<u64> {
        let c = DcnDeals::new(self.deals, &self.provider.provider);
        Ok(self.provider.send("submitResult", c.submitResult(id, B256::repeat_byte(0x22))).await?.gas_used)
    }

    async fn accept(&self, id: B256) -> Result<u64> {
        let c = DcnDeals::new(self.deals, &self.jc.provider);
        Ok(self.jc.send("acceptResult", c.acceptResult(id)).await?.gas_used)
    }

    async fn challenge(&self, id: B256) -> Result<u64> {
        let c = DcnDeals::new(self.deals, &self.jc.provider);
        Ok(self.jc.send("challenge", c.challenge(id)).await?.gas_used)
    }

    async fn draw(&self, id: B256) -> Result<u64> {
        let c = DcnDeals::new(self.deals, &self.mediator.provider);
        Ok(self.mediator.send("draw", c.draw(id)).await?.gas_used)
    }

    async fn cancel(&mut self) -> Result<u64> {
        let d = self.deal().await?;
        let c = DcnDeals::new(self.deals, &self.provider.provider);
        Ok(self.provider.send("cancelDeal", c.cancelDeal(d)).await?.gas_used)
    }

    async fn mediate(&self, id: B256, honest: bool) -> Result<u64> {
        let c = DcnDeals::new(self.deals, &self.mediator.provider);
        Ok(self.mediator.send("mediate", c.mediate(id, honest)).await?.gas_used)
    }

    async fn timeout(&self, id: B256) -> Result<u64> {
        self.admin.provider.raw_request::<_, serde_json::Value>("evm_increaseTime".into(), [601]).await?;
        self.admin.provider.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
        let c = DcnDeals::new(self.deals, &self.admin.provider);
        Ok(self.admin.send("timeout", c.timeout(id)).await?.gas_used)
    }
}

async fn deposit(client: &ChainClient, token: Address, deals: Address) -> Result<()> {
    let amount = parse_ether("1000")?;
    client.send("approve", DcnToken::new(token, &client.provider).approve(deals, amount)).await?;
    client.send("deposit", DcnDeals::new(deals, &client.provider).deposit(amount)).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let anvil = chain::anvil::spawn(1337, 0, None)?;
    let net = ResolvedNetwork {
        name: "bench".into(),
        rpc_url: anvil.endpoint(),
        chain_id: 1337,
        dev_accounts: true,
        registry: None,
    };
    let admin = chain::connect(&net, DevRole::Admin.signer()).await?;
    let data = tempfile::tempdir()?;
    let options = DeployOptions {
        force: true,
        job_board_operator: DevRole::Solver.address(),
        cowsay_price: U256::from(1),
        job_board_min_payment: U256::from(1),
        job_board_min_timeout_secs: 600,
        approve: Vec::new(),
    };
    let c = chain::deploy(&admin, data.path(), &options).await?.deployment.contracts;
    let plan = chain::FundPlan {
        token: c.token,
        eth: parse_ether("1")?,
        tokens: parse_ether("10000")?,
        accounts: [DevRole::JobCreator, DevRole::Provider].iter().map(|r| (r.name().into(), r.address())).collect(),
        token_only: vec![],
    };
    chain::fund(&admin, &plan).await?;
    let jc = chain::connect(&net, DevRole::JobCreator.signer()).await?;
    let provider = chain::connect(&net, DevRole::Provider.signer()).await?;
    let mediator = chain::connect(&net, DevRole::Mediator.signer()).await?;
    deposit(&jc, c.token, c.deals).await?;
    deposit(&provider, c.token, c.deals).await?;
    let mut b = Bench { admin, jc, provider, mediator, deals: c.deals, nonce: 0 };

    // Warm-up deal so that the mediator's escrow slot exists, as in a running network.
    let (id, _) = b.create().await?;
    b.submit(id).await?;
    b.challenge(id).await?;
    b.draw(id).await?;
    b.mediate(id, true).await?;

    let (id, create) = b.create().await?;
    let submit = b.submit(id).await?;
    let accept = b.accept(id).await?;
    println!("gas_create_deal {create} gas");
    println!("gas_submit_result {submit} gas");
    println!("gas_accept_result {accept} gas");
    println!("gas_happy_path {} gas", create + submit + accept);

    for (name, honest) in [("gas_challenge_honest", true), ("gas_challenge_dishonest", false)] {
        let (id, create) = b.create().await?;
        let judged = create + b.submit(id).await? + b.challenge(id).await?;
        let total = judged + b.draw(id).await? + b.mediate(id, honest).await?;
        println!("{name} {total} gas");
    }

    let (id, create) = b.create().await?;
    println!("gas_timeout_no_result {} gas", create + b.timeout(id).await?);
    let (id, create) = b.create().await?;
    println!("gas_timeout_no_judgement {} gas", create + b.submit(id).await? + b.timeout(id).await?);
    let (id, create) = b.create().await?;
    let judged = create + b.submit(id).await? + b.challenge(id).await?;
    let total = judged + b.draw(id).await? + b.timeout(id).await?;
    println!("gas_timeout_no_verdict {total} gas");
    println!("gas_cancel_deal {} gas", b.cancel().await?);
    Ok(())
}
