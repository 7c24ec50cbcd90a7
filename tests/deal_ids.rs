//! The Rust deal id and provider signature agree with `DcnDeals` on a real chain.

mod common;

use dcn::chain::DealState;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use common::{anvil, block_on};
use dcn::chain::bindings::{DcnDeals, DcnToken};
use dcn::chain::deals::{deal_id, domain, sign_deal};
use dcn::chain::DevRole;

#[test]
fn rust_deal_id_and_signature_are_what_the_contract_checks() {
    let chain = anvil();
    block_on(async {
        let jc = DevRole::JobCreator.signer();
        let provider_key = DevRole::Provider.signer();
        let p = ProviderBuilder::new()
            .wallet(EthereumWallet::from(jc.clone()))
            .connect_http(chain.endpoint().parse().unwrap())
            .erased();
        let token = DcnToken::deploy(&p, U256::from(10u64).pow(U256::from(24))).await.unwrap();
        let params = DcnDeals::Params {
            minMediators: 1,
            minAuditPpm: 0,
            appealWindow: 60,
            minMediationFee: Default::default(),
            silenceSlash: Default::default(),
            minBond: alloy::primitives::aliases::U96::from(1),
            appealFee: alloy::primitives::aliases::U96::from(1),
        };
        let deals = DcnDeals::deploy(&p, *token.address(), params).await.unwrap();
        let d = DcnDeals::Deal {
            jobCreator: jc.address(),
            provider: provider_key.address(),
            solver: DevRole::Solver.address(),
            mediators: vec![DevRole::Mediator.address(), Address::repeat_byte(9)],
            price: U256::ZERO,
            collateral: U256::ZERO,
            mediationFee: U256::ZERO,
            auditFee: U256::ZERO,
            auditPpm: 0,
            resultTimeout: 60,
            judgeTimeout: 60,
            mediationTimeout: 60,
            createDeadline: dcn::clock::now_secs() + 600,
            jobHash: B256::repeat_byte(7),
            nonce: U256::from(1),
        };
        let dom = domain(1337, *deals.address());
        let ours = deal_id(&d, &dom);
        assert_eq!(deals.dealId(d.clone()).call().await.unwrap(), ours);
        assert_eq!(
            deals.termsOf(d.clone()).call().await.unwrap(),
            dcn::chain::api::terms_of(&d),
            "the terms later calls pass back are the contract's"
        );

        let sig = sign_deal(&provider_key, &d, &dom).await.unwrap();
        let receipt = deals.createDeal(d.clone(), sig).send().await.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "the contract accepts the Rust signature");
        let state = deals.getDeal(ours).call().await.unwrap().state;
        assert_eq!(DealState::from_chain(state).unwrap(), DealState::Created, "created under the same id");
        let _ = p.get_block_number().await.unwrap();
    });
}
