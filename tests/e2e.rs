//! End to end: `dcn dev`, `dcn provider` and `dcn run` as processes on a real anvil with
//! real Docker jobs, checking the output, the deal states on chain and every token.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use common::block_on;
use common::net::{deal_id, dev_accounts, dev_key, json, test_module, DevNet};
use dcn::chain::bindings::{CowsayClient, DcnDeals};
use dcn::chain::{DealState, DevRole};
use std::time::{Duration, Instant};

fn dcn_units(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

/// Dev defaults: price 1, collateral 10, mediation fee 1 (DCN).
fn price() -> U256 {
    dcn_units(1)
}
fn collateral() -> U256 {
    dcn_units(10)
}
fn fee() -> U256 {
    dcn_units(1)
}

fn signed_delta(after: U256, before: U256) -> i128 {
    if after >= before {
        i128::try_from(after - before).unwrap()
    } else {
        -i128::try_from(before - after).unwrap()
    }
}

struct Wealth(Vec<(Address, U256)>);

impl Wealth {
    fn of(net: &DevNet, accounts: &[Address]) -> Self {
        Self(accounts.iter().map(|a| (*a, net.wealth(*a))).collect())
    }
    fn delta(&self, net: &DevNet, a: Address) -> i128 {
        let before = self.0.iter().find(|(x, _)| *x == a).unwrap().1;
        signed_delta(net.wealth(a), before)
    }
}

#[test]
fn happy_path_prints_the_cow_and_accounts_for_every_token() {
    let net = DevNet::start(&[]);
    let (jc, pv) = (DevRole::JobCreator.address(), DevRole::Provider.address());
    let before = Wealth::of(&net, &[jc, pv]);
    let (eth0, gas0) = (net.eth(jc), net.gas_spent(jc));

    let out = net.cmd().current_dir(net.home.path()).args(["run", "cowsay", "-i", "Message=moo"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dcn run failed:\n{stderr}");
    assert!(stdout.contains("< moo >") && stdout.contains("(oo)"), "no cow:\n{stdout}");
    for step in ["matching", "deal on chain", "running", "result submitted", "downloaded", "accepted"] {
        assert!(stderr.contains(&format!("✔ {step}")), "step `{step}` not reported:\n{stderr}");
    }

    let results = net.home.path().join("dcn-results");
    let dirs: Vec<_> = std::fs::read_dir(&results).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let id: B256 = dirs[0].file_name().unwrap().to_str().unwrap().parse().unwrap();
    assert!(dirs[0].join("bundle.tar").exists() && dirs[0].join("stdout").exists());
    assert_eq!(net.deal_state(id), DealState::Accepted);

    assert_eq!(before.delta(&net, pv), i128::try_from(price()).unwrap(), "provider gains exactly the price");
    assert_eq!(before.delta(&net, jc), -i128::try_from(price()).unwrap(), "job creator pays exactly the price");
    let gas = net.gas_spent(jc) - gas0;
    assert!(!gas.is_zero());
    assert_eq!(eth0 - net.eth(jc), gas, "the job creator's ether went to gas only");
    net.assert_books_balance(&dev_accounts());
}

#[test]
fn the_whole_network_runs_on_a_chain_of_the_merge_generation() {
    // THREATS K7: contracts compiled for `cancun` deployed on Shanghai-era chains and then
    // every registry read failed. They are compiled for `paris` now; this chain knows
    // neither PUSH0 (Shanghai) nor blobs (Cancun).
    let net = DevNet::start(&["--hardfork", "paris"]);
    let head = block_on(net.reader().get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)).unwrap().unwrap();
    assert!(head.header.withdrawals_root.is_none(), "not a pre-Shanghai chain: {:?}", head.header);
    let (jc, pv) = (DevRole::JobCreator.address(), DevRole::Provider.address());
    let before = Wealth::of(&net, &[jc, pv]);

    let v = json(
        &net.cmd()
            .current_dir(net.home.path())
            .args(["run", "cowsay", "-i", "Message=paris", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["state"], "accepted", "{v}");
    let stdout = std::fs::read_to_string(net.home.path().join(v["dir"].as_str().unwrap()).join("stdout")).unwrap();
    assert!(stdout.contains("< paris >"), "{stdout}");
    assert_eq!(net.deal_state(deal_id(&v)), DealState::Accepted);
    assert_eq!(before.delta(&net, pv), i128::try_from(price()).unwrap(), "provider paid the price");
    assert_eq!(before.delta(&net, jc), -i128::try_from(price()).unwrap(), "job creator paid the price");
    net.assert_books_balance(&dev_accounts());
}

#[test]
fn challenge_of_an_honest_provider_pays_it_and_the_mediator() {
    let net = DevNet::start(&[]);
    let (jc, pv, md) = (DevRole::JobCreator.address(), DevRole::Provider.address(), DevRole::Mediator.address());
    let before = Wealth::of(&net, &[jc, pv, md]);
    let v = json(
        &net.cmd()
            .current_dir(net.home.path())
            .args(["run", "cowsay", "-i", "Message=moo", "--challenge", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["state"], "mediated_honest", "{v}");
    assert_eq!(net.deal_state(deal_id(&v)), DealState::MediatedHonest);
    let p = i128::try_from(price()).unwrap();
    let f = i128::try_from(fee()).unwrap();
    assert_eq!(before.delta(&net, pv), p);
    assert_eq!(before.delta(&net, md), f);
    assert_eq!(before.delta(&net, jc), -(p + f));
    net.assert_books_balance(&dev_accounts());
}

/// Needs the test-only fault switch: `make test` builds with `--features fault-injection`.
#[cfg(feature = "fault-injection")]
#[test]
fn challenge_of_a_cheating_provider_slashes_its_collateral() {
    let net = DevNet::start(&["--no-provider"]);
    let _cheat = net.provider(None, &["--fault", "wrong-result"], "cheat");
    let (jc, pv, md) = (DevRole::JobCreator.address(), DevRole::Provider.address(), DevRole::Mediator.address());
    let before = Wealth::of(&net, &[jc, pv, md]);
    let v = json(
        &net.cmd()
            .current_dir(net.home.path())
            .args(["run", "cowsay", "-i", "Message=moo", "--challenge", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["state"], "mediated_dishonest", "{v}");
    assert_eq!(net.deal_state(deal_id(&v)), DealState::MediatedDishonest);
    let c = i128::try_from(collateral()).unwrap();
    let f = i128::try_from(fee()).unwrap();
    assert_eq!(before.delta(&net, pv), -c, "the cheater loses its collateral");
    assert_eq!(before.delta(&net, md), f, "the mediator is paid from it");
    assert_eq!(before.delta(&net, jc), c - f, "the job creator is refunded and gets the rest");
    net.assert_books_balance(&dev_accounts());
}

#[test]
fn a_provider_that_dies_after_the_deal_is_created_is_slashed_at_the_deadline() {
    let net = DevNet::start(&["--no-provider"]);
    let mut provider = net.provider(None, &[], "provider");
    let (jc, pv) = (DevRole::JobCreator.address(), DevRole::Provider.address());
    let before = Wealth::of(&net, &[jc, pv]);
    let run = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", &test_module("slow"), "-i", "Secs=8", "--result-margin", "2", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    net.wait_job_running(DevRole::Provider.address());
    provider.kill9();
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a job with no result is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no result before the deadline"));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["state"], "timed_out_no_result", "{v}");
    assert_eq!(net.deal_state(deal_id(&v)), DealState::TimedOutNoResult);
    let c = i128::try_from(collateral()).unwrap();
    assert_eq!(before.delta(&net, jc), c, "refund plus the provider's collateral");
    assert_eq!(before.delta(&net, pv), -c);
    net.assert_books_balance(&dev_accounts());
}

#[test]
fn a_provider_killed_mid_job_resumes_and_completes_it_once() {
    let net = DevNet::start(&["--no-provider"]);
    let mut provider = net.provider(None, &[], "provider");
    let pv = DevRole::Provider.address();
    let before = Wealth::of(&net, &[pv]);
    let run = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", &test_module("slow"), "-i", "Secs=3", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    net.wait_job_running(DevRole::Provider.address());
    provider.kill9();
    let _restarted = net.provider(None, &[], "provider");
    let v = json(&run.wait_with_output().unwrap());
    assert_eq!(v["state"], "accepted", "{v}");
    let id = deal_id(&v);
    let stdout = std::fs::read_to_string(net.home.path().join(format!("dcn-results/{id}/stdout"))).unwrap();
    assert_eq!(stdout, "slept 3\n");
    assert_eq!(before.delta(&net, pv), i128::try_from(price()).unwrap(), "paid once");
    let c = net.deployment().contracts;
    let logs = block_on(async {
        let f = Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::ResultSubmitted::SIGNATURE_HASH);
        net.reader().get_logs(&f).await.unwrap()
    });
    assert_eq!(logs.len(), 1, "one result on chain");
    net.assert_books_balance(&dev_accounts());
}

#[test]
fn cowsay_client_gets_its_result_hash_through_the_job_board() {
    let net = DevNet::start(&[]);
    let c = net.deployment().contracts;
    let admin = dev_key(0);
    let wallet = alloy::network::EthereumWallet::from(admin);
    let p = ProviderBuilder::new().wallet(wallet).connect_http(net.rpc_url.parse().unwrap());
    let client = CowsayClient::new(c.cowsay_client, &p);
    let job = net.job_hash("cowsay", &["Message=moo"]);
    block_on(async { client.runCowsay("moo".into(), job).send().await.unwrap().get_receipt().await.unwrap() });
    let deadline = Instant::now() + Duration::from_secs(60);
    let hash = loop {
        let h = block_on(async { client.lastResultHash().call().await.unwrap() });
        if !h.is_zero() {
            break h;
        }
        assert!(Instant::now() < deadline, "no result delivered within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    let v = json(
        &net.cmd()
            .current_dir(net.home.path())
            .args(["run", "cowsay", "-i", "Message=moo", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["result_hash"].as_str().unwrap().parse::<B256>().unwrap(), hash, "the same job gives the same hash");
    let mut accounts = dev_accounts();
    accounts.push(c.cowsay_client);
    net.assert_books_balance(&accounts);
}

/// A user scripting a batch: twenty `dcn run` of one account started at once, from an
/// account with nothing in escrow yet (each run approves and deposits), against two providers
/// of two slots each. Every transaction of the account takes its turn (one nonce at a time,
/// escrow top-ups not racing), so all twenty are bought once, run and paid once.
#[test]
fn twenty_runs_of_one_account_at_once_are_each_bought_and_paid_once_without_overbooking() {
    let net = DevNet::start(&["--no-provider"]);
    let second = dev_key(5);
    let creator = dev_key(10);
    net.fund(&[creator.address(), second.address()]);
    let before = net.wealth(creator.address());
    let _p1 = net.provider(None, &["--offer-count", "2"], "p1");
    let _p2 = net.provider(Some(&second), &["--offer-count", "2"], "p2");

    let runs: Vec<_> = (0..20)
        .map(|i| {
            net.cmd()
                .current_dir(net.home.path())
                .env("WEB3_PRIVATE_KEY", hex::encode(creator.to_bytes()))
                .args(["run", "cowsay", "-i", &format!("Message=job-{i}"), "--json", "--match-timeout", "240"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for (i, r) in runs.into_iter().enumerate() {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "run {i} failed: {}", String::from_utf8_lossy(&out.stderr));
        let v = json(&out);
        assert_eq!(v["state"], "accepted", "{v}");
        let id = deal_id(&v);
        let stdout = std::fs::read_to_string(net.home.path().join(format!("dcn-results/{id}/stdout"))).unwrap();
        assert!(stdout.contains(&format!("< job-{i} >")), "{stdout}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 20, "twenty distinct deals");

    // Per provider, deals between creation and acceptance never overlap more than its slots.
    let c = net.deployment().contracts;
    let (created, accepted) = block_on(async {
        let r = net.reader();
        let created = r
            .get_logs(
                &Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::DealCreated::SIGNATURE_HASH),
            )
            .await
            .unwrap();
        let accepted = r
            .get_logs(
                &Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::ResultAccepted::SIGNATURE_HASH),
            )
            .await
            .unwrap();
        (created, accepted)
    });
    assert_eq!(created.len(), 20, "each job bought exactly once");
    assert_eq!(accepted.len(), 20);
    for provider in [DevRole::Provider.address(), second.address()] {
        let mut edges = vec![];
        for l in &created {
            let e = DcnDeals::DealCreated::decode_log(&l.inner).unwrap();
            if e.provider == provider {
                edges.push((l.block_number.unwrap(), 1i32));
                let end = accepted.iter().find(|a| a.topics()[1] == e.dealId).map(|a| a.block_number.unwrap()).unwrap();
                edges.push((end, -1));
            }
        }
        edges.sort();
        let (mut now, mut max) = (0, 0);
        for (_, d) in edges {
            now += d;
            max = max.max(now);
        }
        assert!(max <= 2, "provider {provider} had {max} deals at once with 2 slots");
    }
    // Paid once each: the account is poorer by twenty prices, no more.
    assert_eq!(signed_delta(net.wealth(creator.address()), before), -20 * i128::try_from(price()).unwrap());
    let mut accounts = dev_accounts();
    accounts.extend([creator.address(), second.address()]);
    net.assert_books_balance(&accounts);
}

#[test]
fn machines_join_from_three_values_and_trust_only_approved_services() {
    // THREATS S10: a machine other than the deployer's finds the network from the RPC URL,
    // the chain id and the registry's address; no record file is copied. THREATS K4:
    // strangers registered as solver and mediator are not trusted by default.
    let net = DevNet::start(&["--no-provider"]);
    let registry = net.deployment().contracts.registry;
    let stranger = dev_key(9);
    let wallet = alloy::network::EthereumWallet::from(stranger.clone());
    let p = ProviderBuilder::new().wallet(wallet).connect_http(net.rpc_url.parse().unwrap());
    let reg = dcn::chain::bindings::DcnRegistry::new(registry, &p);
    block_on(async {
        for role in [dcn::chain::Role::Mediator, dcn::chain::Role::Solver] {
            let call = reg.register(role.to_chain(), "http://127.0.0.1:9".into(), String::new());
            call.send().await.unwrap().get_receipt().await.unwrap();
        }
    });

    let registry = registry.to_string();
    let join = |home: &std::path::Path, key: &alloy::signers::local::PrivateKeySigner| {
        let mut c = common::bare_dcn(home);
        c.args(["--network", "lab", "--rpc-url", &net.rpc_url, "--chain-id", "1337", "--registry", &registry])
            .env("WEB3_PRIVATE_KEY", hex::encode(key.to_bytes()))
            .current_dir(home);
        c
    };
    let provider_home = tempfile::tempdir().unwrap();
    let log = provider_home.path().join("provider.log");
    let child = join(provider_home.path(), &DevRole::Provider.signer())
        .arg("provider")
        .env("DCN_PROVIDER__MIN_RESULT_MARGIN_SECS", "1")
        .env("DCN_PROVIDER__OFFER_RAM_MB", "256")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _provider = common::net::Proc { child, log };
    common::wait_until("the joined provider's offer at the solver", 60, || {
        net.open_offers(DevRole::Provider.address()) > 0
    });

    let jc_home = tempfile::tempdir().unwrap();
    let listed = join(jc_home.path(), &DevRole::JobCreator.signer())
        .args(["registry", "list", "mediator", "--json"])
        .output()
        .unwrap();
    let listed = json(&listed);
    let approved: Vec<bool> = listed.as_array().unwrap().iter().map(|e| e["approved"].as_bool().unwrap()).collect();
    assert_eq!(approved.len(), 2, "the network's mediator and the stranger are registered: {listed}");
    assert_eq!(approved.iter().filter(|a| **a).count(), 1, "only the network's is approved: {listed}");

    let v = json(
        &join(jc_home.path(), &DevRole::JobCreator.signer())
            .args(["run", "cowsay", "-i", "Message=joined", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(v["state"], "accepted", "{v}");
    let stdout = std::fs::read_to_string(jc_home.path().join(v["dir"].as_str().unwrap()).join("stdout")).unwrap();
    assert!(stdout.contains("< joined >"), "{stdout}");
    // The deal's terms are in the calldata of the `createDeal` that emitted DealCreated.
    let mediators = block_on(async {
        use alloy::consensus::Transaction;
        use alloy::sol_types::SolCall;
        let p = net.reader();
        let filter = Filter::new()
            .address(net.deployment().contracts.deals)
            .from_block(0)
            .event_signature(DcnDeals::DealCreated::SIGNATURE_HASH)
            .topic1(deal_id(&v));
        let log = p.get_logs(&filter).await.unwrap().pop().expect("DealCreated of the deal");
        let tx = p.get_transaction_by_hash(log.transaction_hash.unwrap()).await.unwrap().unwrap();
        DcnDeals::createDealCall::abi_decode(tx.inner.input()).unwrap().deal.mediators
    });
    assert_eq!(mediators, vec![DevRole::Mediator.address()], "the stranger is not among the deal's mediators");
    for home in [provider_home.path(), jc_home.path()] {
        assert!(!home.join(".dcn/deployments").exists(), "no deployment record on a joined machine");
    }
}
