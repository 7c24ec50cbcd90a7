//! The Rust deal id and provider signature agree with `DcnDeals` on a real chain, and so
//! do dcn's rule for a deal signature's form and its reading of `createDeal`'s reverts
//! (THREATS N3).

mod common;

use dcn::chain::DealState;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use common::{anvil, block_on};
use dcn::chain::bindings::{DcnDeals, DcnToken};
use dcn::chain::deals::{deal_id, domain, sign_deal};
use dcn::chain::DevRole;

/// Rules that let every deal of these tests through: one mediator, no audits, no fees.
fn params() -> DcnDeals::Params {
    DcnDeals::Params {
        minMediators: 1,
        minAuditPpm: 0,
        appealWindow: 60,
        minMediationFee: Default::default(),
        silenceSlash: Default::default(),
        minBond: alloy::primitives::aliases::U96::from(1),
        appealFee: alloy::primitives::aliases::U96::from(1),
    }
}

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
        let deals = DcnDeals::deploy(&p, *token.address(), params()).await.unwrap();
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

/// One signature rule on both sides (THREATS N3): every form `protocol::check_canonical`
/// refuses, `DcnDeals` refuses too (`BadSignature`), and the canonical one it takes; and
/// `AlloyChain` reads `createDeal`'s reverts as the contract means them: the provider's
/// signature, escrow or cancellation is its fault, the job creator's escrow is not, and a
/// `createDeal` that would revert sends nothing.
#[test]
fn the_contract_refuses_what_dcn_calls_non_canonical_and_its_reverts_name_the_provider() {
    use dcn::chain::{AlloyChain, ChainError, Contracts, CreateCheck, DealsChain, ProviderFault};
    let chain = anvil();
    block_on(async {
        let jc = DevRole::JobCreator.signer();
        let provider_key = DevRole::Provider.signer();
        let net = dcn::config::ResolvedNetwork {
            name: "anvil".into(),
            rpc_url: chain.endpoint(),
            chain_id: 1337,
            dev_accounts: true,
            registry: None,
        };
        let client = dcn::chain::connect(&net, jc.clone()).await.unwrap();
        let token = DcnToken::deploy(&client.provider, U256::from(10u64).pow(U256::from(24))).await.unwrap();
        let deals = DcnDeals::deploy(&client.provider, *token.address(), params()).await.unwrap();
        let contracts = Contracts {
            token: *token.address(),
            registry: Address::ZERO,
            deals: *deals.address(),
            job_board: Address::ZERO,
            cowsay_client: Address::ZERO,
        };
        let alloy = AlloyChain::new(client.clone(), contracts);
        // The solver asks as itself what the job creator's `createDeal` would do.
        let solver = AlloyChain::new(dcn::chain::connect(&net, DevRole::Solver.signer()).await.unwrap(), contracts);
        let dom = domain(1337, *deals.address());
        let deal = |n: u64, price: u64, collateral: u64| DcnDeals::Deal {
            jobCreator: jc.address(),
            provider: provider_key.address(),
            solver: DevRole::Solver.address(),
            mediators: vec![DevRole::Mediator.address()],
            price: U256::from(price),
            collateral: U256::from(collateral),
            mediationFee: U256::ZERO,
            auditFee: U256::ZERO,
            auditPpm: 0,
            resultTimeout: 60,
            judgeTimeout: 60,
            mediationTimeout: 60,
            createDeadline: dcn::clock::now_secs() + 600,
            jobHash: B256::repeat_byte(7),
            nonce: U256::from(n),
        };

        // The signature forms.
        let d = deal(1, 0, 0);
        let good = sign_deal(&provider_key, &d, &dom).await.unwrap().to_vec();
        dcn::protocol::check_canonical(&good).unwrap();
        let mut low_v = good.clone();
        low_v[64] -= 27;
        let n = U256::from_str_radix("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16).unwrap();
        let mut high_s = good.clone();
        high_s[32..64].copy_from_slice(&(n - U256::from_be_slice(&good[32..64])).to_be_bytes::<32>());
        high_s[64] = if good[64] == 27 { 28 } else { 27 };
        let mut long = good.clone();
        long.push(0);
        for (what, sig) in
            [("v 0 or 1", low_v), ("high s", high_s), ("64 bytes", good[..64].to_vec()), ("66 bytes", long)]
        {
            assert!(dcn::protocol::check_canonical(&sig).is_err(), "{what}: dcn refuses it");
            let check = solver.check_create(&d, &sig.into()).await.unwrap();
            assert_eq!(check, CreateCheck::ProviderFault(ProviderFault::BadSignature), "{what}: so does the contract");
        }
        assert_eq!(solver.check_create(&d, &good.clone().into()).await.unwrap(), CreateCheck::Passes);

        // Escrow: the provider's is its fault; the job creator's is not.
        let short = deal(2, 0, 5);
        let sig = sign_deal(&provider_key, &short, &dom).await.unwrap();
        let check = solver.check_create(&short, &sig).await.unwrap();
        assert_eq!(check, CreateCheck::ProviderFault(ProviderFault::EscrowShort));
        let sent = client.provider.get_transaction_count(jc.address()).await.unwrap();
        let err = alloy.create_deal(&short, sig).await.unwrap_err();
        assert!(matches!(err, ChainError::ProviderFault(ProviderFault::EscrowShort)), "{err}");
        assert_eq!(client.provider.get_transaction_count(jc.address()).await.unwrap(), sent, "nothing was sent");
        let unpaid = deal(3, 5, 0);
        let sig = sign_deal(&provider_key, &unpaid, &dom).await.unwrap();
        let check = solver.check_create(&unpaid, &sig).await.unwrap();
        assert!(matches!(check, CreateCheck::Fails(ref why) if why.contains("InsufficientEscrow")), "{check:?}");

        // Cancelled by its provider.
        let cancelled = deal(4, 0, 0);
        let sig = sign_deal(&provider_key, &cancelled, &dom).await.unwrap();
        let provider_client = dcn::chain::connect(&net, provider_key.clone()).await.unwrap();
        let as_provider = DcnDeals::new(*deals.address(), &provider_client.provider);
        provider_client.send("cancelling", as_provider.cancelDeal(cancelled.clone())).await.unwrap();
        let check = solver.check_create(&cancelled, &sig).await.unwrap();
        assert_eq!(check, CreateCheck::ProviderFault(ProviderFault::Cancelled));

        // The good one goes through, and then exists: not the provider's doing.
        alloy.create_deal(&d, good.clone().into()).await.unwrap();
        let check = solver.check_create(&d, &good.into()).await.unwrap();
        assert!(matches!(check, CreateCheck::Fails(ref why) if why.contains("DealExists")), "{check:?}");
    });
}
