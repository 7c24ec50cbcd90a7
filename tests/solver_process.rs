//! `dcn solver` as a process against a real anvil: it registers on chain, keeps every
//! offer, deal, result and event across `kill -9`, follows deal states on chain, and gives
//! a slot back when its deal ends so that matching continues.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{utils::parse_ether, Address, B256};
use common::solver::*;
use common::{anvil, block_on, Dcn};
use dcn::chain::bindings::{DcnDeals, DcnRegistry, DcnToken};
use dcn::chain::{AlloyChain, ChainClient, DealRef, DealState, DealsChain, Deployment, DevRole};
use dcn::config::ResolvedNetwork;
use dcn::protocol::records::{DealStatus, Event, OfferRecord, OfferStatus};
use dcn::protocol::{OfferKind, SolverApi, SolverClient};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `dcn solver` process, killed on drop so a failing test leaves nothing running.
struct SolverProcess(Child);

impl Drop for SolverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_solver(dcn: &Dcn, port: u16, log: &std::path::Path) -> SolverProcess {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = dcn
        .cmd()
        .args(["solver", "--listen", &format!("127.0.0.1:{port}")])
        .env("DCN_SOLVER__CHAIN_POLL_MS", "200")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = SolverProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the solver did not listen within 30 s");
}

fn kill9(child: &mut SolverProcess) {
    let status = std::process::Command::new("kill").args(["-9", &child.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    child.0.wait().unwrap();
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn all_events(client: &SolverClient, who: Address) -> Vec<Event> {
    let mut stream = client.events(who, 0).await.unwrap();
    let mut out = vec![];
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(700), stream.next()).await {
        out.push(e);
    }
    out
}

async fn chain(url: &str, role: DevRole) -> ChainClient {
    let net = ResolvedNetwork {
        name: "geth".into(),
        rpc_url: url.into(),
        chain_id: 1337,
        dev_accounts: true,
        registry: None,
    };
    dcn::chain::connect(&net, role.signer()).await.unwrap()
}

async fn deposit(c: &ChainClient, d: &Deployment, amount: &str) {
    let amount = parse_ether(amount).unwrap();
    c.send("approve", DcnToken::new(d.contracts.token, &c.provider).approve(d.contracts.deals, amount)).await.unwrap();
    c.send("deposit", DcnDeals::new(d.contracts.deals, &c.provider).deposit(amount)).await.unwrap();
}

#[test]
fn solver_survives_kill_9_and_follows_the_chain() {
    let anvil = anvil();
    let dcn = Dcn::new(anvil.endpoint());
    dcn.ok(&["deploy"]);
    dcn.ok(&["fund"]);
    let deployment = Deployment::require(&dcn.data_dir(), "geth").unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = dcn.home.path().join("solver.log");
    let mut child = start_solver(&dcn, port, &log);

    let provider = DevRole::Provider.signer();
    let creator = DevRole::JobCreator.signer();
    let mediator = DevRole::Mediator.address();
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir.path().join("bundle.tar");
    std::fs::write(&bundle, b"the bundle bytes").unwrap();

    let before = block_on(async {
        let client = SolverClient::connect(&url).await.unwrap();
        assert_eq!(client.info().solver, DevRole::Solver.address());
        let registry = DcnRegistry::new(deployment.contracts.registry, common::reader(&anvil.endpoint()));
        let entry = registry.get(0, DevRole::Solver.address()).call().await.unwrap();
        assert_eq!(entry.url, url, "registered its URL on chain");

        // The solver takes offers only while their owners' escrow backs them (THREATS V2).
        let jc = chain(&anvil.endpoint(), DevRole::JobCreator).await;
        let pc = chain(&anvil.endpoint(), DevRole::Provider).await;
        deposit(&jc, &deployment, "5").await;
        deposit(&pc, &deployment, "5").await;
        let mut r = resource_offer(&provider, client.info().solver);
        r.mediators = vec![mediator];
        r.price = parse_ether("1").unwrap();
        r.collateral = parse_ether("2").unwrap();
        let r = sign_resource(r, &provider, &client).await;
        client.post_resource_offer(&r).await.unwrap();
        let mut jobs = vec![];
        for msg in ["first", "second"] {
            let spec = spec(msg);
            let mut j = job_offer(&creator, client.info().solver, &spec);
            j.mediators = vec![mediator];
            j.maxPrice = parse_ether("5").unwrap();
            j.mediationFee = parse_ether("0.1").unwrap();
            j.auditFee = parse_ether("0.1").unwrap();
            j.auditPpm = 0;
            jobs.push(client.post_job_offer(&sign_job(j, spec, &creator, &client).await).await.unwrap());
        }
        let deal = jobs[0].deal.expect("the first job is matched");
        assert_eq!(jobs[1].status, OfferStatus::Open, "the second waits for the slot");
        let signed = client.sign_deal(&provider, deal).await.unwrap();

        // The deal goes on chain with the signature the solver relayed; only then does the
        // solver take a result for it (THREATS V4).
        let deals_jc = DcnDeals::new(deployment.contracts.deals, &jc.provider);
        let sig = signed.provider_signature.clone().unwrap();
        jc.send("createDeal", deals_jc.createDeal(signed.deal.clone(), sig)).await.unwrap();
        let on_chain = deals_jc.getDeal(deal).call().await.unwrap();
        assert_eq!(
            DealState::from_chain(on_chain.state).unwrap(),
            DealState::Created,
            "the solver's deal id is the contract's"
        );
        wait_for("the solver to see the deal created", async || {
            (client.deal(deal).await.unwrap().state == DealStatus::Created).then_some(())
        })
        .await;
        let result = client.upload_result(&provider, deal, &bundle).await.unwrap();
        (deal, jobs[1].id, result.sha256, all_events(&client, provider.address()).await)
    });
    let (deal_id, waiting_job, sha, provider_events) = before;
    assert_eq!(provider_events.len(), 5, "posted, proposed, signed, created, uploaded: {provider_events:?}");

    kill9(&mut child);
    let mut child = start_solver(&dcn, port, &log);

    block_on(async {
        let client = SolverClient::connect(&url).await.unwrap();
        let deal = client.deal(deal_id).await.unwrap();
        assert_eq!(deal.state, DealStatus::Created);
        let dest = bundle_dir.path().join("down.tar");
        assert_eq!(client.download_result(&creator, deal_id, &dest).await.unwrap(), sha);
        assert_eq!(std::fs::read(&dest).unwrap(), b"the bundle bytes");
        assert_eq!(all_events(&client, provider.address()).await, provider_events, "the event log survived");
        match client.offer(waiting_job, OfferKind::Job).await.unwrap() {
            OfferRecord::Job(j) => assert_eq!(j.status, OfferStatus::Open),
            other => panic!("{other:?}"),
        }

        let jc = chain(&anvil.endpoint(), DevRole::JobCreator).await;
        let pc = chain(&anvil.endpoint(), DevRole::Provider).await;

        // It ends: the slot comes back and the waiting job gets it.
        let signed = client.deal(deal_id).await.unwrap();
        let dref = DealRef { id: deal_id, deal: signed.deal, since_block: 0 };
        AlloyChain::new(pc, deployment.contracts).submit_result(&dref, B256::repeat_byte(0x22)).await.unwrap();
        AlloyChain::new(jc, deployment.contracts).accept_result(&dref).await.unwrap();
        wait_for("the solver to see the deal accepted", async || {
            (client.deal(deal_id).await.unwrap().state == DealStatus::Accepted).then_some(())
        })
        .await;
        let next =
            wait_for("the waiting job to be matched", async || match client.offer(waiting_job, OfferKind::Job).await {
                Ok(OfferRecord::Job(j)) if j.status == OfferStatus::Matched => j.deal,
                _ => None,
            })
            .await;
        assert_ne!(next, deal_id);
    });

    // SIGTERM stops it cleanly.
    std::process::Command::new("kill").arg(child.0.id().to_string()).status().unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit status {status}; log:\n{}", std::fs::read_to_string(&log).unwrap());
}
