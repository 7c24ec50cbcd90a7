//! Contracts v3 end to end: audits catch a provider that fakes, an appeal overturns a
//! mediator that rules wrongly, and a deal naming a hand-picked mediator is refused by
//! both sides (docs/THREATS.md P3, M5, J9, SO2). `dcn dev`, `dcn provider`, `dcn mediator`,
//! `dcn solver` and `dcn run` as processes on a real anvil with real Docker jobs; the
//! misbehaving parties use the test-only `--fault` switches (`make test` builds with
//! `--features fault-injection`).

#![cfg(feature = "fault-injection")]
#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use common::block_on;
use common::net::{deal_id, dev_accounts, dev_key, json, DevNet, Proc};
use dcn::chain::bindings::DcnDeals;
use dcn::chain::{DealState, DevRole};
use dcn::protocol::client::SolverApi;
use dcn::protocol::records::DealStatus;
use dcn::protocol::SolverClient;
use std::time::Duration;

fn units(n: i128) -> i128 {
    n * 10i128.pow(18)
}

fn delta(after: U256, before: U256) -> i128 {
    i128::try_from(after).unwrap() - i128::try_from(before).unwrap()
}

fn wealth(net: &DevNet, accounts: &[Address]) -> Vec<U256> {
    accounts.iter().map(|a| net.wealth(*a)).collect()
}

/// Approves `key` as a mediator (the network owner's key), funds it and starts it as a
/// `dcn mediator` process: it posts its bond and is then in the pool appeals draw from.
fn second_mediator(net: &DevNet, key: &PrivateKeySigner, name: &str) -> Proc {
    let out = net.run(&["registry", "approve", "mediator", &key.address().to_string()]);
    assert!(out.status.success(), "approve: {}", common::stderr(&out));
    net.fund(&[key.address()]);
    net.mediator_as(Some(key), &[], name)
}

/// Waits until `event` of `DcnDeals` has been logged `n` times.
fn wait_for_event<E: SolEvent>(net: &DevNet, what: &str, n: usize, secs: u64) {
    let c = net.deployment().contracts;
    common::wait_until(what, secs, || {
        block_on(async {
            let f = Filter::new().address(c.deals).from_block(0).event_signature(E::SIGNATURE_HASH);
            net.reader().get_logs(&f).await.map(|l| l.len() >= n).unwrap_or(false)
        })
    });
}

/// THREATS P3: a provider that reports a result it did not compute (its bundle holds up,
/// so `dcn run` accepts it) is caught by an audit when every result is audited (q = 1):
/// the mediator re-runs the job and the provider loses its collateral c, the auditor's fee
/// paid from it and the rest to the job creator, whose price and audit fee come back.
#[test]
fn an_audit_catches_a_provider_that_fakes() {
    let net = DevNet::start_with(&["--no-provider"], &[("DCN_DEPLOY__MIN_AUDIT_PPM", "1000000")]);
    let _cheat = net.provider(None, &["--fault", "wrong-result"], "cheat");
    let who = [DevRole::JobCreator.address(), DevRole::Provider.address(), DevRole::Mediator.address()];
    let before = wealth(&net, &who);
    let out = net
        .cmd()
        .current_dir(net.home.path())
        .env("DCN_JOB__AUDIT_PPM", "1000000")
        .args(["run", "cowsay", "-i", "Message=moo", "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["state"], "audited", "the bundle holds up, so it is accepted and then drawn for audit: {v}");
    let id = deal_id(&v);
    common::wait_until("the auditor's verdict", 120, || net.deal_state(id).is_final());
    assert_eq!(net.deal_state(id), DealState::MediatedDishonest, "the audit found the fake");
    let after = wealth(&net, &who);
    let (c, a) = (units(10), units(1));
    assert_eq!(delta(after[1], before[1]), -c, "the faking provider loses its collateral");
    assert_eq!(delta(after[2], before[2]), a, "the auditor is paid its fee out of it");
    assert_eq!(delta(after[0], before[0]), c - a, "the job creator pays nothing and gets the rest");
    net.assert_books_balance(&dev_accounts());
}

/// THREATS M5, J9: a mediator that rules against an honest provider is overturned on the
/// provider's appeal by a mediator drawn from the network's pool (not from the deal's
/// list), and pays for it out of its bond: the appeal mediator's fee first, the rest to the
/// provider, whose appeal fee comes back. The first verdict's money stays where it went.
#[test]
fn a_wrong_verdict_is_overturned_on_appeal_and_costs_its_mediator_the_bond() {
    let dev_mediator = DevRole::Mediator.address().to_string();
    let net = DevNet::start_with(&["--no-provider", "--no-mediator"], &[("SERVICE_MEDIATORS", &dev_mediator)]);
    // The deal names only the development mediator, which rules the opposite of its re-run.
    let _wrong = net.mediator_as(None, &["--fault", "wrong-verdict"], "wrong-mediator");
    let appeals = dev_key(5);
    let _pool = second_mediator(&net, &appeals, "appeal-mediator");
    let _honest = net.provider(None, &["--mediators", &dev_mediator], "provider");
    let who =
        [DevRole::JobCreator.address(), DevRole::Provider.address(), DevRole::Mediator.address(), appeals.address()];
    let before = wealth(&net, &who);
    let out = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", "cowsay", "-i", "Message=moo", "--challenge", "--mediators", &dev_mediator, "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    assert_eq!(v["state"], "mediated_dishonest", "the wrong verdict: {v}");
    let id = deal_id(&v);
    wait_for_event::<DcnDeals::AppealDecided>(&net, "the appeal's verdict", 1, 180);
    let decided = block_on(async {
        let c = net.deployment().contracts;
        let f = Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::AppealDecided::SIGNATURE_HASH);
        let log = net.reader().get_logs(&f).await.unwrap().pop().unwrap();
        DcnDeals::AppealDecided::decode_log(&log.inner).unwrap().data
    });
    assert_eq!(decided.dealId, id);
    assert_eq!(decided.mediator, appeals.address(), "drawn from the pool, not the deal's list");
    assert!(decided.overturned, "the appeal mediator's re-run matches the provider's result");
    assert_eq!(net.deal_state(id), DealState::MediatedDishonest, "the first verdict's money stays where it went");
    let after = wealth(&net, &who);
    let (c, f, bond, appeal_fee) = (units(10), units(1), units(50), units(2));
    assert_eq!(delta(after[2], before[2]), f - bond, "the wrong mediator keeps its fee and loses the least bond");
    assert_eq!(delta(after[3], before[3]), appeal_fee, "the appeal mediator is paid the appeal fee from that bond");
    assert_eq!(
        delta(after[1], before[1]),
        -c + bond - appeal_fee,
        "the provider lost c to the verdict, gets the rest of the bond and its appeal fee back"
    );
    assert!(-c + bond - appeal_fee > units(1), "more than the price it was owed: made whole");
    assert_eq!(delta(after[0], before[0]), c - f, "the job creator keeps what the verdict gave it");
    net.assert_books_balance(&[dev_accounts(), vec![appeals.address()]].concat());
}

/// THREATS P5, SO2: a solver that writes one of the mediators both sides trust into the
/// deal (its hand-picked one) finds no taker. The real provider refuses to sign it; a
/// provider that signs anything finds `dcn run` refusing the signed deal before it sends a
/// transaction. Nobody's tokens move.
#[test]
fn a_deal_naming_one_mediator_is_refused_by_both_sides() {
    let net = DevNet::start(&["--no-provider"]);
    let other = dev_key(5);
    let _second = second_mediator(&net, &other, "second-mediator");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let solver_dir = tempfile::tempdir().unwrap();
    let _solver = net.solver_process_with(port, solver_dir.path(), &["--fault", "one-mediator"], "hostile-solver");
    let signer = dev_key(7);
    net.fund(&[signer.address()]);
    let who = dev_accounts();
    let before = wealth(&net, &who);

    // The real provider trusts both approved mediators and refuses a deal naming one.
    let mut provider = net.provider_at(&url, None, &[], "provider");
    let out = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", "cowsay", "-i", "Message=moo", "--solver", &url, "--match-timeout", "20", "--json"])
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert!(!out.status.success(), "no provider signs it");
    assert!(
        err.contains("mediators are not the ones both sides trust"),
        "the provider's reason reaches the user:\n{err}"
    );
    provider.interrupt();

    // A provider that signs whatever it is proposed: `dcn run` refuses the signed deal.
    net.deposit(&signer, U256::from(units(100)));
    let client = block_on(SolverClient::connect(&url)).unwrap();
    let mut offer = common::solver::resource_offer(&signer, client.info().solver);
    offer.mediators = vec![DevRole::Mediator.address(), other.address()];
    offer.price = U256::from(units(1) / 2);
    offer.collateral = U256::from(units(10));
    block_on(client.post_resource_offer(&block_on(common::solver::sign_resource(offer, &signer, &client)))).unwrap();
    let run = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", "cowsay", "-i", "Message=moo", "--solver", &url, "--match-timeout", "30", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let signed = loop {
        let deals = block_on(client.deals(Some(signer.address()), 0)).unwrap_or_default();
        if let Some(d) = deals.iter().find(|d| d.state == DealStatus::Proposed) {
            assert_eq!(d.deal.mediators.len(), 1, "the hostile solver's pick");
            block_on(client.sign_deal(&signer, d.id)).unwrap();
            break Some(d.id);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = run.wait_with_output().unwrap();
    let log = std::fs::read_to_string(net.home.path().join("hostile-solver.log")).unwrap_or_default();
    assert!(signed.is_some(), "no deal proposed to the signing provider:\n{}\n{log}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&signed.unwrap().to_string()) && err.contains("mediators are not the ones both sides trust"),
        "dcn run refuses the signed deal and says why:\n{err}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(wealth(&net, &who), before, "nothing was created, nobody's tokens moved");
    let created = block_on(async {
        let c = net.deployment().contracts;
        let f = Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::DealCreated::SIGNATURE_HASH);
        net.reader().get_logs(&f).await.unwrap().len()
    });
    assert_eq!(created, 0, "no deal went on chain");
    net.assert_books_balance(&[dev_accounts(), vec![other.address(), signer.address()]].concat());
}
