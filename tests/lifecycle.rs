//! How processes start and stop, as a new user meets them: `dcn dev` stops in an order in
//! which every part finishes at once and takes its chain with it even when killed, a client
//! on another chain than the solver's is stopped before it deposits, and services started
//! before the network's owner approved a solver wait for one.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use common::net::{DevNet, Proc};
use common::{anvil, block_on, reader, stderr, wait_until, Dcn};
use dcn::chain::bindings::{DcnDeals, DcnToken};
use dcn::chain::{Deployment, DevRole};
use std::process::{Command, Stdio};

fn interrupt(p: &Proc) {
    let status = Command::new("kill").args(["-INT", &p.child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -INT");
}

/// Waits (a hang guard, not a measure) until `p` exits, and returns its exit status.
fn exit_of(p: &mut Proc, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(what, 60, || {
        status = p.child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn ctrl_c_stops_dev_with_no_retry_or_warning_after_the_stop_began() {
    let mut net = DevNet::start(&[]);
    // The provider's offer is open: cancelling it at the solver is part of its stop, which
    // failed and was retried for seconds when the solver stopped first.
    wait_until("the dev provider's open offer", 60, || net.open_offers(DevRole::Provider.address()) > 0);
    let mut dev = net.dev.take().unwrap();
    // What is logged from here on is logged after the stop began.
    let began = dev.log_text().len();
    interrupt(&dev);
    let status = exit_of(&mut dev, "dcn dev to exit after Ctrl-C");
    let log = dev.log_text();
    let stop = &log[began..];
    for word in ["WARN", "ERROR", "retry"] {
        assert!(!stop.contains(word), "`{word}` logged after the stop began:\n{stop}");
    }
    assert!(status.success(), "dcn dev exited with {status}:\n{log}");
    for said in ["signal received: stopping", "provider stopped", "mediator stopped"] {
        assert!(stop.contains(said), "`{said}` not logged:\n{stop}");
    }
    let out = std::fs::read_to_string(net.home.path().join("dev.out")).unwrap();
    assert!(out.contains("── stopped"), "{out}");
}

#[test]
fn a_dev_killed_with_sigkill_takes_its_chain_with_it() {
    let mut net = DevNet::start(&["--no-provider", "--no-mediator", "--no-jobboard"]);
    let chain = ("127.0.0.1", port_of(&net.rpc_url));
    assert!(std::net::TcpStream::connect(chain).is_ok(), "the chain listens while dcn dev runs");
    net.dev.take().unwrap().kill9();
    wait_until("the chain of the killed dcn dev to stop listening", 30, || {
        std::net::TcpStream::connect(chain).is_err()
    });
}

/// Free and locked escrow and token balance of `account` on the chain at `url`.
fn holdings(url: &str, d: &Deployment, account: Address) -> (U256, U256, U256) {
    block_on(async {
        let p = reader(url);
        let e = DcnDeals::new(d.contracts.deals, &p).escrowOf(account).call().await.unwrap();
        let tokens = DcnToken::new(d.contracts.token, &p).balanceOf(account).call().await.unwrap();
        (e.free, e.locked, tokens)
    })
}

#[test]
fn a_run_on_another_chain_than_the_solvers_stops_before_it_deposits() {
    // A development chain restarted: same chain id, same deployer, so the same addresses.
    let net = DevNet::start(&["--no-provider", "--no-mediator", "--no-jobboard"]);
    // Block 0 carries the second its chain started: two chains started within one second
    // cannot be told apart, so the second one starts in a later second.
    let started = block_on(async {
        let genesis = reader(&net.rpc_url).get_block_by_number(0.into()).await.unwrap().unwrap();
        genesis.header.timestamp
    });
    wait_until("the clock to pass the first chain's start", 10, || dcn::clock::now_secs() > started);
    let other = anvil();
    let dcn = Dcn::new(other.endpoint());
    dcn.ok(&["deploy"]);
    dcn.ok(&["fund"]);
    let d = Deployment::require(&dcn.data_dir(), "geth").unwrap();
    assert_eq!(d.contracts, net.deployment().contracts, "the two chains look alike");
    let genesis =
        |url: &str| block_on(async { reader(url).get_block_by_number(0.into()).await.unwrap().unwrap().header.hash });
    assert_ne!(genesis(&net.rpc_url), genesis(&other.endpoint()), "but for block 0");
    let jc = DevRole::JobCreator.address();
    let before = (holdings(&net.rpc_url, &d, jc), holdings(&other.endpoint(), &d, jc));

    let mediator = DevRole::Mediator.address().to_string();
    let out = dcn.run(&["run", "cowsay", "-i", "Message=moo", "--solver", &net.solver_url, "--mediators", &mediator]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("follows another chain"), "{err}");
    assert!(err.contains(&net.solver_url) && err.contains(&other.endpoint()), "both URLs named: {err}");
    assert!(err.contains("--rpc-url"), "says what to do: {err}");
    let after = (holdings(&net.rpc_url, &d, jc), holdings(&other.endpoint(), &d, jc));
    assert_eq!(after, before, "nothing deposited on either chain");
}

/// `dcn ARGS` of `dcn` as a process logging to `<name>.log` in its home.
fn spawn(dcn: &Dcn, args: &[&str], name: &str) -> Proc {
    let log = dcn.home.path().join(format!("{name}.log"));
    let child =
        dcn.cmd().args(args).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    Proc { child, log }
}

fn registered(dcn: &Dcn, role: &str, account: Address) -> bool {
    let out = dcn.ok(&["registry", "list", role, "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    rows.iter().any(|r| r["account"].as_str().unwrap().parse::<Address>().unwrap() == account)
}

#[test]
fn a_mediator_started_before_any_solver_is_approved_waits_and_takes_the_one_approved() {
    let chain = anvil();
    let dcn = Dcn::new(chain.endpoint());
    dcn.ok(&["deploy"]);
    dcn.ok(&["fund"]);
    // `dcn deploy` approves the development solver on a development network: take it back,
    // as on a network whose owner has approved nobody yet.
    let solver = DevRole::Solver.address();
    dcn.ok(&["registry", "revoke", "solver", &solver.to_string()]);
    let d = Deployment::require(&dcn.data_dir(), "geth").unwrap();

    // A one-shot command still fails at once.
    let out = dcn.run(&["run", "cowsay", "-i", "Message=moo"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no solver approved by the network's owner is registered"), "{}", stderr(&out));

    // Ctrl-C while a service waits stops it at once and cleanly.
    let mut first = spawn(&dcn, &["mediator"], "mediator-1");
    wait_until("the mediator to say what it waits for", 60, || first.log_text().contains("waiting for a solver"));
    interrupt(&first);
    let status = exit_of(&mut first, "the waiting mediator to exit after Ctrl-C");
    assert!(status.success(), "{status}:\n{}", first.log_text());

    let mut mediator = spawn(&dcn, &["mediator"], "mediator-2");
    wait_until("the mediator to say what it waits for", 60, || mediator.log_text().contains("waiting for a solver"));
    let said = mediator.log_text();
    for what in [d.contracts.registry.to_string(), "network `geth`".into(), "dcn registry approve solver 0x".into()] {
        assert!(said.contains(&what), "`{what}` not said:\n{said}");
    }
    // A solver registers, not approved yet; the mediator keeps waiting.
    let _solver = spawn(&dcn, &["solver", "--listen", "127.0.0.1:0"], "solver");
    wait_until("the solver to register", 60, || registered(&dcn, "solver", solver));
    assert!(mediator.child.try_wait().unwrap().is_none(), "the mediator waits:\n{}", mediator.log_text());
    assert!(
        !registered(&dcn, "mediator", DevRole::Mediator.address()),
        "no mediator registers before a solver is found"
    );

    dcn.ok(&["registry", "approve", "solver", &solver.to_string()]);
    wait_until("the mediator to find the solver and register", 60, || {
        registered(&dcn, "mediator", DevRole::Mediator.address())
    });
    assert!(mediator.child.try_wait().unwrap().is_none(), "the mediator runs:\n{}", mediator.log_text());
    assert!(mediator.log_text().contains("mediator ready"), "{}", mediator.log_text());
}
