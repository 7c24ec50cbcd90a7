//! How processes start and stop, as a new user meets them: `dcn dev` stops in an order in
//! which every part finishes at once and takes its chain with it even when killed.

#![allow(clippy::unwrap_used)]

mod common;

use common::net::{DevNet, Proc};
use common::wait_until;
use dcn::chain::DevRole;
use std::process::Command;

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
