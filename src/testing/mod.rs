//! Fakes of the roles' dependencies for unit tests, and builders of records. Test builds
//! only.
//!
//! [`FakeChain`] is a tiny `DcnDeals` (and job board and log source): deals move through
//! the contract's states on the same rules, deadlines are checked against a clock the test
//! sets, and every transaction is recorded, so a test can count what a role sent.
//! [`FakeSolver`] keeps offers, deals and results in maps; [`FakeExecutor`] "runs" a job by
//! echoing its argv.

#![allow(clippy::unwrap_used, missing_docs)]

mod chain;
mod solver;

pub use chain::{FakeChain, Tx};
pub use solver::{fake_image_id, fake_results, FakeExecutor, FakeSolver};

use crate::chain::bindings::DcnDeals;
use crate::chain::deals::{deal_id, domain};
use crate::protocol::records::{CreatedDeal, DealRecord, DealStatus};
use crate::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use alloy::primitives::{Address, B256, U256};

pub const CHAIN_ID: u64 = 1337;
pub const DEALS: Address = Address::repeat_byte(0xde);
pub const SOLVER: Address = Address::repeat_byte(0x50);
pub const MEDIATOR: Address = Address::repeat_byte(0xee);
/// The mediator an appeal draws from the network's pool in the fake chain.
pub const APPEAL_MEDIATOR: Address = Address::repeat_byte(0xaa);

/// A cowsay-like job spec printing `message`.
pub fn spec(message: &str) -> JobSpec {
    JobSpec {
        module: ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "ab".into() },
        image: "dcn.local/cowsay:1.0".into(),
        argv: vec!["cowsay".into(), message.into()],
        env: Default::default(),
        resources: Resources { cpu: 500, ram_mb: 64, ..Default::default() },
        network: NetworkPolicy::None,
        timeout_secs: 30,
        outputs: vec![],
        success_exit_codes: vec![],
        run_as_root: false,
    }
}

/// Deal terms between `creator` and `provider` for `spec`.
pub fn terms(creator: Address, provider: Address, spec: &JobSpec, n: u8) -> DcnDeals::Deal {
    DcnDeals::Deal {
        jobCreator: creator,
        provider,
        solver: SOLVER,
        mediators: vec![MEDIATOR],
        price: U256::from(10),
        collateral: U256::from(20),
        mediationFee: U256::from(1),
        auditFee: U256::from(1),
        auditPpm: 1_000_000,
        resultTimeout: 100,
        judgeTimeout: 100,
        mediationTimeout: 100,
        createDeadline: 1_500,
        jobHash: spec.content_hash(),
        nonce: U256::from(n),
    }
}

/// The solver's record of `deal` (its id computed as the contract does).
pub fn record_of(deal: DcnDeals::Deal, state: DealStatus) -> DealRecord {
    DealRecord {
        id: deal_id(&deal, &domain(CHAIN_ID, DEALS)),
        seq: 1,
        deal,
        job_offer: B256::repeat_byte(0x10),
        resource_offer: B256::repeat_byte(0x20),
        state,
        provider_signature: None,
        created_at: 0,
        updated_at: 0,
        refusal: None,
        fault: None,
    }
}

/// A proposed deal number `n` between made-up parties.
pub fn deal_record(n: u8) -> DealRecord {
    record_of(terms(Address::repeat_byte(0xc0), Address::repeat_byte(0xa0), &spec("moo"), n), DealStatus::Proposed)
}

/// A created deal number `n`.
pub fn created_deal(n: u8) -> CreatedDeal {
    CreatedDeal { deal: deal_record(n), spec: spec("moo"), create_tx: B256::repeat_byte(n), created_block: 0 }
}

/// A resource offer of `provider` to `solver`: one small slot at price 10 with `collateral`,
/// trusting `mediators`, good until time 2,000.
pub fn resource_offer(
    provider: Address,
    solver: Address,
    collateral: U256,
    mediators: Vec<Address>,
) -> crate::protocol::ResourceOffer {
    crate::protocol::ResourceOffer {
        provider,
        solver,
        cpu: 1000,
        ramMb: 512,
        gpus: 0,
        vramMb: 0,
        diskMb: 0,
        slots: 1,
        price: U256::from(10),
        collateral,
        mediators,
        modules: vec![],
        maxTimeoutSecs: 3600,
        maxSpecBytes: 65_536,
        maxOutputBytes: 1 << 30,
        expiry: 2_000,
        nonce: U256::from(1),
    }
}
