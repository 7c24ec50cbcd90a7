//! Hostile parties end to end (issue 12): `dcn dev`, `dcn provider`, `dcn mediator` and
//! `dcn run` as processes on a real anvil with real Docker jobs. Each test shows that the
//! honest party's balance changes exactly as the rules promise.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use common::block_on;
use common::net::{deal_id, dev_accounts, json, test_module, DevNet};
use dcn::chain::bindings::{DcnDeals, DcnJobBoard};
use dcn::chain::{DealState, DevRole};

/// Dev defaults: price 1 DCN, mediation fee 1 DCN.
fn units(n: u64) -> i128 {
    i128::from(n) * 10i128.pow(18)
}

fn delta(after: U256, before: U256) -> i128 {
    i128::try_from(after).unwrap() - i128::try_from(before).unwrap()
}

fn wealth(net: &DevNet, accounts: &[Address]) -> Vec<U256> {
    accounts.iter().map(|a| net.wealth(*a)).collect()
}

/// The job creator, the provider and the mediator of a development network, in that order.
fn parties() -> [Address; 3] {
    [DevRole::JobCreator.address(), DevRole::Provider.address(), DevRole::Mediator.address()]
}

/// `dcn ARGS --json` in the network's home with `env`, to its end; what it printed.
fn dcn_json(net: &DevNet, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out =
        net.cmd().current_dir(net.home.path()).envs(env.iter().copied()).args(args).arg("--json").output().unwrap();
    json(&out)
}

/// THREATS S2: a job creator writes a job whose output changes from run to run and
/// challenges it. The mediator's own two runs differ, so the job is not reproducible: the
/// provider is paid and keeps its collateral; the job creator pays for the mediation it asked
/// for.
#[test]
fn a_job_that_is_not_reproducible_challenged_does_not_slash_the_provider() {
    let net = DevNet::start(&[]);
    let who = parties();
    let before = wealth(&net, &who);
    let v = dcn_json(&net, &["run", &test_module("random"), "--challenge"], &[]);
    assert_eq!(v["state"], "mediated_honest", "{v}");
    assert_eq!(net.deal_state(deal_id(&v)), DealState::MediatedHonest);
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(1), "the provider is paid its price and keeps its collateral");
    assert_eq!(delta(after[2], before[2]), units(1), "the mediator earns its fee");
    assert_eq!(delta(after[0], before[0]), -units(2), "the job creator pays the price and the fee");
    let log = net.dev.as_ref().unwrap().log_text();
    assert!(log.contains("not reproducible"), "the mediator says why:\n{log}");
    net.assert_books_balance(&dev_accounts());
}

/// The mediator is killed (SIGKILL) while it re-runs a challenged job and started again: it
/// resumes from its store and the deal settles once, with one verdict.
#[test]
fn a_mediator_killed_mid_rerun_and_restarted_rules_once() {
    let net = DevNet::start(&["--no-mediator"]);
    let mut mediator = net.mediator("mediator");
    let who = parties();
    let before = wealth(&net, &who);
    let run = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", &test_module("slow"), "-i", "Secs=4", "--challenge", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    net.wait_mediator_running();
    mediator.kill9();
    let _again = net.mediator("mediator-again");
    let v = json(&run.wait_with_output().unwrap());
    assert_eq!(v["state"], "mediated_honest", "{v}");
    let c = net.deployment().contracts;
    let verdicts = block_on(async {
        let f = Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::DealMediated::SIGNATURE_HASH);
        net.reader().get_logs(&f).await.unwrap()
    });
    assert_eq!(verdicts.len(), 1, "one verdict");
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(1));
    assert_eq!(delta(after[2], before[2]), units(1), "the mediator is paid once");
    assert_eq!(delta(after[0], before[0]), -units(2));
    net.assert_books_balance(&dev_accounts());
}

/// THREATS S5: a provider reports a result without running the job (`exit 137`, nothing
/// written) and uploads its bundle, whose hash matches what it put on chain. The job creator
/// does not accept a result its module does not call success: it challenges, the mediator's
/// runs disagree with the provider's, and the provider loses its collateral.
#[cfg(feature = "fault-injection")]
#[test]
fn a_provider_that_reports_a_result_without_running_the_job_is_not_paid() {
    let net = DevNet::start(&["--no-provider"]);
    let _lazy = net.provider(None, &["--fault", "skip-job"], "lazy");
    let who = parties();
    let before = wealth(&net, &who);
    let v = dcn_json(&net, &["run", "cowsay", "-i", "Message=moo"], &[]);
    assert_eq!(v["state"], "mediated_dishonest", "{v}");
    let summary = v["summary"].as_str().unwrap();
    assert!(summary.contains("exited with code 137") && summary.contains("does not call success"), "{summary}");
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), -units(10), "the provider loses its collateral");
    assert_eq!(delta(after[2], before[2]), units(1), "the mediator is paid from it");
    assert_eq!(delta(after[0], before[0]), units(9), "the job creator is refunded and gets the rest");
    net.assert_books_balance(&dev_accounts());
}

/// THREATS S1: a job creator offers jobs the provider's machine cannot run: an image that
/// is not there (and cannot be pulled), memory under Docker's minimum, an image without a
/// tag. The provider refuses each before signing (and says why in its log), so no deal is
/// created: nothing is locked and nobody's tokens move.
#[test]
fn jobs_the_provider_cannot_run_are_refused_before_signing() {
    // A slot for each job: a refused proposal holds its slot at the solver until the sign
    // timeout.
    let net = DevNet::start(&["--offer-count", "3"]);
    let who = parties();
    let before = wealth(&net, &who);
    let runs: Vec<_> = ["missing-image", "tiny-ram", "untagged"]
        .iter()
        .map(|m| {
            net.cmd()
                .current_dir(net.home.path())
                .args(["run", &test_module(m), "--match-timeout", "4", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("no provider took the job"), "{err}");
        assert!(err.contains("nothing was locked"), "{err}");
        assert!(
            err.contains("refused it: this machine cannot run the job"),
            "the provider's reason reaches the buyer: {err}"
        );
    }
    assert_eq!(wealth(&net, &who), before, "no tokens moved");
    let log = net.dev.as_ref().unwrap().log_text();
    for why in ["does-not-exist", "under Docker's minimum", "names no tag or digest"] {
        assert!(log.contains(why), "the provider says why it refused ({why}):\n{log}");
    }
    net.assert_books_balance(&dev_accounts());
}

/// THREATS S3, X3: jobs whose output is over their own limit: a 100 GiB sparse file (the
/// default 64 MiB limit) and 2 MiB written by a job that declares 1 MiB of disk. The
/// provider measures before packing and delivers the error bundle at once; the job creator
/// challenges it (exit 125 is not success), and the mediator's re-run reaches the same
/// error bundle by the same rule, so the provider is paid and keeps its collateral.
#[test]
fn outputs_over_the_jobs_limit_are_delivered_as_error_bundles_and_never_slashed() {
    let net = DevNet::start(&["--offer-count", "2"]);
    let who = parties();
    let before = wealth(&net, &who);
    let runs: Vec<_> = ["sparse", "big-output"]
        .iter()
        .map(|m| {
            net.cmd()
                .current_dir(net.home.path())
                .args(["run", &test_module(m), "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let v = json(&run.wait_with_output().unwrap());
        assert_eq!(v["state"], "mediated_honest", "{v}");
        let summary = v["summary"].as_str().unwrap();
        assert!(summary.contains("exited with code 125") && summary.contains("over its limit of"), "{summary}");
        let id = deal_id(&v);
        let stderr = std::fs::read_to_string(net.home.path().join(format!("dcn-results/{id}/stderr"))).unwrap();
        assert!(stderr.contains("over its limit of"), "the error bundle says why: {stderr}");
    }
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(2), "the provider is paid twice and keeps its collateral");
    assert_eq!(delta(after[2], before[2]), units(2), "the mediator earns two fees");
    assert_eq!(delta(after[0], before[0]), -units(4), "the job creator pays two prices and two fees");
    net.assert_books_balance(&dev_accounts());
}

/// A hostile job creator takes the provider's signatures and walks away (`dcn run
/// --fault stop-before-create`), then creates the deals by hand once the solver has given
/// them up (their creation deadline and `CREATE_LAG_SECS` past by its clock). One goes into a block whose producer's clock lags
/// (its timestamp is the deadline, so the chain accepts it): the provider, which watches a
/// signed deal until a block proves its deadline passed, runs it and is paid. The other
/// comes in a block after its deadline and reverts: nothing is locked, nobody pays.
#[cfg(feature = "fault-injection")]
#[test]
fn signed_deals_created_by_hand_after_the_solver_gave_them_up_are_paid_or_revert() {
    use alloy::providers::ProviderBuilder;
    use dcn::chain::bindings::DcnToken;
    use dcn::jobcreator::journal::Journal;
    let net = DevNet::start_with(&["--offer-count", "2"], &[("DCN_SOLVER__CREATE_TIMEOUT_SECS", "5")]);
    let who = parties();
    let before = wealth(&net, &who);
    for _ in 0..2 {
        let out = net
            .cmd()
            .current_dir(net.home.path())
            .args(["run", "cowsay", "-i", "Message=moo", "--fault", "stop-before-create"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("stopped before createDeal"), "{err}");
    }
    let chain_id = block_on(async { net.reader().get_chain_id().await.unwrap() });
    let mut signed = Journal::new(&net.data_dir(), chain_id, who[0]).all().unwrap();
    assert_eq!(signed.len(), 2);
    signed.sort_by_key(|e| e.deal.deal.createDeadline);
    let (late, too_late) = (signed[0].deal.clone(), signed[1].deal.clone());

    // The job creator's escrow, while both deadlines are ahead; then no block is mined
    // until the solver has given both deals up.
    // A provider per runtime: `block_on` makes one each time, and a provider's receipt
    // watcher lives in the runtime that first used it.
    let hand = || {
        let wallet = alloy::network::EthereumWallet::from(DevRole::JobCreator.signer());
        ProviderBuilder::new().wallet(wallet).connect_http(net.rpc_url.parse().unwrap())
    };
    let c = net.deployment().contracts;
    block_on(async {
        let p = hand();
        let (deals, token) = (DcnDeals::new(c.deals, &p), DcnToken::new(c.token, &p));
        let two = U256::from(units(2));
        token.approve(c.deals, two).send().await.unwrap().get_receipt().await.unwrap();
        deals.deposit(two).send().await.unwrap().get_receipt().await.unwrap();
    });
    let at_solver = |id: B256| {
        let url = format!("{}/api/v1/deals/{id}", net.solver_url);
        block_on(async {
            reqwest::get(&url).await.unwrap().json::<serde_json::Value>().await.unwrap()["state"].clone()
        })
    };
    common::wait_until("the solver to give both deals up", 90, || {
        at_solver(late.id) == "expired" && at_solver(too_late.id) == "expired"
    });

    // The block producer stamps the next block with the late deal's deadline: created,
    // long after the solver gave it up.
    let next_block_at = |ts: u64| {
        block_on(async {
            let _: serde_json::Value = hand().raw_request("evm_setNextBlockTimestamp".into(), (ts,)).await.unwrap();
        })
    };
    next_block_at(late.deal.createDeadline);
    block_on(async {
        let p = hand();
        let deals = DcnDeals::new(c.deals, &p);
        let create = deals.createDeal(late.deal.clone(), late.provider_signature.clone().unwrap());
        assert!(create.send().await.unwrap().get_receipt().await.unwrap().status(), "created at its deadline");
    });
    // The other in a block after its deadline: refused, whether by the estimate or on chain.
    next_block_at(too_late.deal.createDeadline + 1);
    block_on(async {
        let p = hand();
        let signature = too_late.provider_signature.clone().unwrap();
        let deals = DcnDeals::new(c.deals, &p);
        let create = deals.createDeal(too_late.deal.clone(), signature);
        match create.send().await {
            Ok(pending) => assert!(!pending.get_receipt().await.unwrap().status(), "reverted after its deadline"),
            Err(e) => assert!(e.to_string().contains("revert"), "{e}"),
        }
    });
    let v = dcn_json(&net, &["jobs", "resume", &late.id.to_string()], &[]);
    assert_eq!(v["state"], "accepted", "the provider ran the late deal: {v}");
    assert_eq!(net.deal_state(too_late.id), DealState::None);
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(1), "the provider is paid for the late deal");
    assert_eq!(delta(after[0], before[0]), -units(1), "the job creator pays once");
    net.assert_books_balance(&dev_accounts());
}

/// THREATS S3: the solver (its own process here) is killed (SIGKILL) while the provider
/// runs the job, so the provider's upload finds nobody; the result hash goes on chain
/// anyway, and once the solver is back the upload follows with backoff. The job creator
/// downloads, verifies and accepts: the provider is paid, nobody is slashed.
#[test]
fn a_solver_killed_before_the_upload_and_restarted_leaves_the_provider_paid() {
    let net = DevNet::start(&["--no-provider"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let solver_dir = tempfile::tempdir().unwrap();
    let mut solver = net.solver_process(port, solver_dir.path(), "solver");
    let _provider = net.provider_at(&url, None, &[], "provider");
    let who = parties();
    let before = wealth(&net, &who);
    let run = net
        .cmd()
        .current_dir(net.home.path())
        .args(["run", &test_module("slow"), "-i", "Secs=3", "--solver", &url, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    net.wait_job_running(DevRole::Provider.address());
    solver.kill9();
    let c = net.deployment().contracts;
    let submitted = || {
        block_on(async {
            let f =
                Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::ResultSubmitted::SIGNATURE_HASH);
            net.reader().get_logs(&f).await.unwrap().len()
        })
    };
    common::wait_until("the result hash on chain while the solver is down", 60, || submitted() == 1);
    let _again = net.solver_process(port, solver_dir.path(), "solver-again");
    let v = json(&run.wait_with_output().unwrap());
    assert_eq!(v["state"], "accepted", "{v}");
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(1), "the provider is paid");
    assert_eq!(delta(after[0], before[0]), -units(1), "the job creator pays the price");
    let log = std::fs::read_to_string(net.home.path().join("provider.log")).unwrap();
    // By the provider's deal loop, or already by its solver client's own retries.
    let retried = log.lines().any(|l| {
        (l.contains("step failed; retrying") && l.contains("stage=Submitted"))
            || (l.contains("solver request failed; retrying") && l.contains("/result"))
    });
    assert!(retried, "the upload after the submit was retried:\n{log}");
    net.assert_books_balance(&dev_accounts());
}

/// THREATS S1: a hand-made job creator posts job offers `dcn run` would never make: a spec
/// that names no command (`argv = []`) and one with 5 milli-CPU, under Docker's minimum.
/// The provider refuses both before signing and its reasons are on the deals' records at
/// the solver; nothing is created on chain and nobody's tokens move.
#[test]
fn hand_made_specs_docker_would_refuse_are_refused_before_signing() {
    use dcn::protocol::{JobOffer, SignedJobOffer, SolverApi, SolverClient};
    let net = DevNet::start(&["--offer-count", "2"]);
    let who = parties();
    // The solver takes job offers only while the creator's free escrow covers them.
    net.deposit(&DevRole::JobCreator.signer(), U256::from(units(10)));
    let before = wealth(&net, &who);
    let cache = tempfile::tempdir().unwrap();
    let resolver = dcn::module::resolve::Resolver { override_dir: None, cache_dir: cache.path().into() };
    let cowsay = resolver.resolve("cowsay").unwrap();
    let spec = cowsay.job_spec(&dcn::module::parse_inputs(&["Message=moo"]).unwrap()).unwrap();
    let no_command = dcn::types::JobSpec { argv: vec![], ..spec.clone() };
    let mut tiny_cpu = spec;
    tiny_cpu.resources.cpu = 5;
    let offers: Vec<B256> = block_on(async {
        let client = SolverClient::connect(&net.solver_url).await.unwrap();
        let info = client.info().clone();
        let mut ids = vec![];
        for spec in [no_command, tiny_cpu] {
            let offer = JobOffer {
                jobCreator: who[0],
                solver: info.solver,
                jobHash: spec.content_hash(),
                maxPrice: U256::from(units(10)),
                mediationFee: U256::from(units(1)),
                auditFee: U256::from(units(1)),
                auditPpm: 1_000_000,
                mediators: vec![who[2]],
                resultTimeout: spec.timeout_secs + 60,
                judgeTimeout: 60,
                mediationTimeout: 60,
                expiry: dcn::clock::now_secs() + 60,
                nonce: U256::from(ids.len() + 1),
            };
            let signed =
                SignedJobOffer::sign(offer, spec, &DevRole::JobCreator.signer(), &info.domain()).await.unwrap();
            ids.push(client.post_job_offer(&signed).await.unwrap().id);
        }
        ids
    });
    let refusals = || -> Vec<String> {
        let url = format!("{}/api/v1/deals?party={}", net.solver_url, who[0]);
        let deals =
            block_on(async { reqwest::get(&url).await.unwrap().json::<Vec<serde_json::Value>>().await.unwrap() });
        offers
            .iter()
            .filter_map(|o| {
                let deal = deals.iter().find(|d| d["job_offer"] == o.to_string() && d["refusal"].is_string())?;
                Some(deal["refusal"].as_str().unwrap().to_string())
            })
            .collect()
    };
    common::wait_until("the provider to refuse both jobs", 60, || refusals().len() == 2);
    let why = refusals();
    assert!(why[0].contains("this machine cannot run the job") && why[0].contains("names no command"), "{why:?}");
    assert!(why[1].contains("under Docker's minimum"), "{why:?}");
    assert_eq!(wealth(&net, &who), before, "no tokens moved");
    let c = net.deployment().contracts;
    let created = block_on(async {
        let f = Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::DealCreated::SIGNATURE_HASH);
        net.reader().get_logs(&f).await.unwrap()
    });
    assert!(created.is_empty(), "no deal on chain");
}

/// THREATS S6: `dcn run` is killed (SIGKILL) once its deal is on chain and the job runs.
/// `dcn jobs` lists the deal as resumable; `dcn jobs resume` downloads and verifies the
/// result and accepts it: the job completes once and the provider is paid once.
#[test]
fn a_run_killed_after_creating_its_deal_is_resumed_to_its_end_once() {
    let net = DevNet::start(&["--no-provider"]);
    let _provider = net.provider(None, &[], "provider");
    let who = parties();
    let before = wealth(&net, &who);
    let mut run = common::net::Proc {
        child: net
            .cmd()
            .current_dir(net.home.path())
            .args(["run", &test_module("slow"), "-i", "Secs=4", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        log: net.home.path().join("run.log"),
    };
    net.wait_job_running(DevRole::Provider.address());
    run.kill9();

    let listed = dcn_json(&net, &["jobs"], &[]);
    let jobs = listed.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(jobs[0]["done"], false, "{listed}");
    assert!(["created", "result_submitted"].contains(&jobs[0]["state"].as_str().unwrap()), "{listed}");
    let id = jobs[0]["deal_id"].as_str().unwrap().to_string();

    let v = dcn_json(&net, &["jobs", "resume", &id], &[]);
    assert_eq!(v["state"], "accepted", "{v}");
    let stdout = std::fs::read_to_string(net.home.path().join(format!("dcn-results/{id}/stdout"))).unwrap();
    assert_eq!(stdout, "slept 4\n");
    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(1), "the provider is paid once");
    assert_eq!(delta(after[0], before[0]), -units(1), "the job creator pays once");
    let c = net.deployment().contracts;
    let accepted = block_on(async {
        let f = Filter::new().address(c.deals).from_block(0).event_signature(DcnDeals::ResultAccepted::SIGNATURE_HASH);
        net.reader().get_logs(&f).await.unwrap()
    });
    assert_eq!(accepted.len(), 1);
    let listed = dcn_json(&net, &["jobs"], &[]);
    assert_eq!((listed[0]["state"].as_str(), listed[0]["done"].as_bool()), (Some("accepted"), Some(true)), "{listed}");
    net.assert_books_balance(&dev_accounts());
}

/// The job board service is killed (SIGKILL) once it bought a contract's request (the deal
/// is on chain) and started again: it resumes from its store, and the request is bought
/// once, paid once and delivered once.
#[test]
fn a_job_board_killed_mid_deal_and_restarted_delivers_once() {
    job_board_restarted_delivers_once(&[], |board| board.kill9());
}

/// The job board exits (as if killed) right after its `createDeal` is mined, before it can
/// record the deal: the restarted board finds the signed deal it recorded on chain and
/// follows it; it does not buy the request again. (The old board recorded the deal only
/// once created: killed in that window, it bought again, and the second deal waited for the
/// provider's only slot while the first held it.)
#[test]
fn a_job_board_killed_before_recording_its_created_deal_does_not_buy_again() {
    job_board_restarted_delivers_once(&["--fault", "exit-after-create"], |board| {
        let status = board.child.wait().unwrap();
        assert_eq!(status.code(), Some(137), "the board exits by its fault switch: {}", board.log_text());
    });
}

/// A job board started with `flags` buys a contract's request; once the deal is on chain
/// `stop` ends it, and a second job board, started on the same store, delivers the result
/// once.
fn job_board_restarted_delivers_once(flags: &[&str], stop: impl FnOnce(&mut common::net::Proc)) {
    let net = DevNet::start(&["--no-jobboard"]);
    let mut board = net.jobboard_with("jobboard", flags);
    let c = net.deployment().contracts;
    let admin = alloy::network::EthereumWallet::from(common::net::dev_key(0));
    let p = alloy::providers::ProviderBuilder::new().wallet(admin).connect_http(net.rpc_url.parse().unwrap());
    let client = dcn::chain::bindings::CowsayClient::new(c.cowsay_client, &p);
    let before = wealth(&net, &[DevRole::Provider.address()]);
    let job = net.job_hash("cowsay", &["Message=moo"]);
    block_on(async { client.runCowsay("moo".into(), job).send().await.unwrap().get_receipt().await.unwrap() });
    let logs = |sig: B256, at: Address| {
        block_on(async {
            net.reader().get_logs(&Filter::new().address(at).from_block(0).event_signature(sig)).await.unwrap()
        })
    };
    common::wait_until("the job board's deal on chain", 60, || {
        !logs(DcnDeals::DealCreated::SIGNATURE_HASH, c.deals).is_empty()
    });
    stop(&mut board);
    let _again = net.jobboard("jobboard-again");
    let delivered = || block_on(async { !client.lastResultHash().call().await.unwrap().is_zero() });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !delivered() {
        if std::time::Instant::now() > deadline {
            // Both job boards' logs, to tell why (the test once failed here in CI).
            let log =
                |name: &str| std::fs::read_to_string(net.home.path().join(format!("{name}.log"))).unwrap_or_default();
            panic!(
                "the result was not delivered to the contract within 90 s\n--- jobboard.log\n{}\n--- jobboard-again.log\n{}",
                log("jobboard"),
                log("jobboard-again")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(logs(DcnDeals::DealCreated::SIGNATURE_HASH, c.deals).len(), 1, "bought once");
    assert_eq!(logs(DcnDeals::ResultAccepted::SIGNATURE_HASH, c.deals).len(), 1, "paid once");
    assert_eq!(logs(DcnJobBoard::JobDelivered::SIGNATURE_HASH, c.job_board).len(), 1, "delivered once");
    let after = wealth(&net, &[DevRole::Provider.address()]);
    assert_eq!(delta(after[0], before[0]), units(1), "the provider is paid once");
    let mut accounts = dev_accounts();
    accounts.push(c.cowsay_client);
    net.assert_books_balance(&accounts);
}

/// Issue 13, proven under load (THREATS V1–V6): while the development provider and a
/// `dcn run` job creator complete two jobs, hostile clients on other loopback addresses
/// flood the solver (a process: `dcn dev`) with junk signatures naming both, unbacked
/// offers, oversized specs, signed uploads for deals that do not exist and idle
/// WebSockets. Both jobs complete and are paid, every answer the flood gets is a 4xx, and
/// nothing it sent is stored. Bounded: the flood stops when the jobs are done or after
/// three minutes.
#[test]
fn a_flood_of_hostile_clients_neither_stops_honest_jobs_nor_is_stored() {
    use dcn::protocol::{AuthHeaders, JobOffer, SignedJobOffer, SolverApi, SolverClient};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let net = DevNet::start(&[]);
    let who = parties();
    let before = wealth(&net, &who);
    let stop = Arc::new(AtomicBool::new(false));
    // Answers by class: [4xx, anything else, no answer (a refused connection or a body cut)].
    let answers: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let stranger = alloy::signers::local::PrivateKeySigner::random();
    let flood = {
        let (stop, answers, url, stranger) = (stop.clone(), answers.clone(), net.solver_url.clone(), stranger.clone());
        std::thread::spawn(move || {
            block_on(async move {
                let info = SolverClient::connect(&url).await.unwrap().info().clone();
                let domain = info.domain();
                let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
                let mut sockets = vec![];
                for i in 0..80 {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
                    let Ok(stream) = socket.connect(addr).await else { continue };
                    let victim = who[i % 2];
                    let ws = format!("ws://{addr}/api/v1/events?address={victim}&since=0");
                    if let Ok((ws, _)) = tokio_tungstenite::client_async(ws, stream).await {
                        sockets.push(ws);
                    }
                }
                let mut spec = dcn::types::JobSpec {
                    module: dcn::types::ModuleRef { name: "cowsay".into(), version: "1".into(), hash: "ab".into() },
                    image: "dcn.local/cowsay:1.0".into(),
                    argv: vec!["cowsay".into()],
                    env: Default::default(),
                    resources: dcn::types::Resources { cpu: 1000, ram_mb: 256, ..Default::default() },
                    network: dcn::types::NetworkPolicy::None,
                    timeout_secs: 30,
                    outputs: vec![],
                    success_exit_codes: vec![],
                    run_as_root: false,
                };
                let offer = |spec: &dcn::types::JobSpec| JobOffer {
                    jobCreator: stranger.address(),
                    solver: info.solver,
                    jobHash: spec.content_hash(),
                    maxPrice: U256::from(units(1)),
                    mediationFee: U256::from(units(1)),
                    auditFee: U256::from(1),
                    auditPpm: 1_000_000,
                    mediators: vec![who[2]],
                    resultTimeout: 600,
                    judgeTimeout: 600,
                    mediationTimeout: 600,
                    expiry: dcn::clock::now_secs() + 600,
                    nonce: U256::from_be_bytes(B256::random().0),
                };
                let unbacked = SignedJobOffer::sign(offer(&spec), spec.clone(), &stranger, &domain).await.unwrap();
                spec.argv.push("x".repeat(70 * 1024));
                let oversized = SignedJobOffer::sign(offer(&spec), spec, &stranger, &domain).await.unwrap();
                let bundle = vec![0u8; 256 * 1024];
                let mut tasks = vec![];
                for i in 0..8u8 {
                    let ip = std::net::Ipv4Addr::new(127, 0, 0, 3 + i);
                    let http = reqwest::Client::builder()
                        .local_address(std::net::IpAddr::V4(ip))
                        .timeout(std::time::Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let (stop, answers, url) = (stop.clone(), answers.clone(), url.clone());
                    let (unbacked, oversized, bundle, stranger) =
                        (unbacked.clone(), oversized.clone(), bundle.clone(), stranger.clone());
                    let domain = domain.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut n = 0usize;
                        while !stop.load(Ordering::Relaxed) {
                            n += 1;
                            let req = match n % 4 {
                                0 => http
                                    .delete(format!("{url}/api/v1/job_offers/{}", B256::random()))
                                    .header("x-dcn-account", who[n % 2].to_string())
                                    .header("x-dcn-expiry", (dcn::clock::now_secs() + 60).to_string())
                                    .header("x-dcn-nonce", n.to_string())
                                    .header("x-dcn-body-sha256", dcn::protocol::EMPTY_BODY.to_string())
                                    .header(
                                        "x-dcn-signature",
                                        alloy::primitives::Bytes::from(vec![7u8; 65]).to_string(),
                                    ),
                                1 => http.post(format!("{url}/api/v1/job_offers")).json(&unbacked),
                                2 => http.post(format!("{url}/api/v1/job_offers")).json(&oversized),
                                _ => {
                                    let path = format!("/api/v1/deals/{}/result", B256::random());
                                    let sha = dcn::protocol::body_sha256(&bundle);
                                    let expiry = dcn::clock::now_secs() + 60;
                                    let auth =
                                        AuthHeaders::sign(&stranger, "PUT", &path, sha, expiry, &domain).await.unwrap();
                                    let mut req = http.put(format!("{url}{path}")).body(bundle.clone());
                                    for (k, v) in auth.to_pairs() {
                                        req = req.header(k, v);
                                    }
                                    req
                                }
                            };
                            let class = match req.send().await {
                                Ok(r) if r.status().is_client_error() => 0,
                                Ok(_) => 1,
                                Err(_) => 2,
                            };
                            answers[class].fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                sockets.len()
            })
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut runs = vec![];
    for message in ["moo", "moo again"] {
        let arg = format!("Message={message}");
        let v = dcn_json(&net, &["run", "cowsay", "-i", &arg], &[]);
        assert_eq!(v["state"], "accepted", "{v}");
        runs.push(v);
        assert!(std::time::Instant::now() < deadline, "the honest jobs took over three minutes");
    }
    stop.store(true, Ordering::Relaxed);
    let sockets = flood.join().unwrap();
    let [refused, other, unanswered] = [0, 1, 2].map(|i| answers[i].load(Ordering::Relaxed));
    assert!(refused > 100, "the flood ran: {refused} refused, {unanswered} unanswered");
    assert_eq!(other, 0, "every answer to the flood is a 4xx ({refused} were)");
    assert!(sockets <= 64, "one address holds at most 64 event streams, not {sockets}");
    eprintln!("flood: {refused} refused with 4xx, {unanswered} cut off, {sockets} idle event streams held");

    let after = wealth(&net, &who);
    assert_eq!(delta(after[1], before[1]), units(2), "the provider is paid for both jobs");
    assert_eq!(delta(after[0], before[0]), -units(2), "the job creator pays for both");
    let client = block_on(SolverClient::connect(&net.solver_url)).unwrap();
    let stats: serde_json::Value = block_on(async {
        reqwest::get(format!("{}/api/v1/stats", net.solver_url)).await.unwrap().json().await.unwrap()
    });
    let offers: u64 = stats["offers"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    let listed = |owner: Address, kind: &str| {
        block_on(async {
            let url = format!("{}/api/v1/{kind}?owner={owner}&limit=500", net.solver_url);
            reqwest::get(url).await.unwrap().json::<Vec<serde_json::Value>>().await.unwrap().len() as u64
        })
    };
    assert_eq!(listed(stranger.address(), "job_offers"), 0, "no offer of the flood is stored");
    let honest = listed(who[1], "resource_offers") + listed(who[0], "job_offers");
    assert_eq!(offers, honest, "every stored offer is the provider's or the job creator's: {stats}");
    let deals = block_on(async {
        let url = format!("{}/api/v1/deals?limit=500", net.solver_url);
        reqwest::get(url).await.unwrap().json::<Vec<serde_json::Value>>().await.unwrap()
    });
    assert_eq!(deals.len(), 2, "the two honest deals only");
    for v in &runs {
        assert!(block_on(client.deal(deal_id(v))).is_ok());
    }
    let results = std::fs::read_dir(net.data_dir().join("dev/solver/results")).unwrap();
    let bundles = results.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "tar")).count();
    assert_eq!(bundles, 2, "the two honest bundles only");
    net.assert_books_balance(&dev_accounts());
}
