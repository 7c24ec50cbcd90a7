//! The solver's API over a real server on 127.0.0.1:0 with RocksDB in a temp dir: happy
//! paths, every refusal (with its code, and nothing stored), limits, results and events.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use common::solver::*;
use dcn::clock::now_secs;
use dcn::protocol::records::{DealStatus, EventKind, OfferRecord, OfferStatus};
use dcn::protocol::ClientError;
use dcn::protocol::{body_sha256, AuthHeaders, EMPTY_BODY};
use dcn::protocol::{OfferKind, SolverApi};
use serde_json::{json, Value};
use std::sync::Arc;

fn refused(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn raw(method: reqwest::Method, url: String, body: Option<String>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn event_count(s: &TestSolver) -> u64 {
    let (_, v) = raw(reqwest::Method::GET, format!("{}/healthz", s.url()), None).await;
    v["last_event_seq"].as_u64().unwrap()
}

#[tokio::test]
async fn offers_match_into_a_deal_the_provider_signs() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    let posted = s.client.post_resource_offer(&r).await.unwrap();
    assert_eq!(posted.status, OfferStatus::Open);

    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let job = s.client.post_job_offer(&j).await.unwrap();
    assert_eq!(job.status, OfferStatus::Matched);
    let deal_id = job.deal.expect("matched at once");

    let deal = s.client.deal(deal_id).await.unwrap();
    assert_eq!(deal.state, DealStatus::Proposed);
    assert_eq!(deal.deal.provider, provider.address());
    assert_eq!(deal.deal.jobCreator, creator.address());
    assert_eq!(deal.deal.solver, s.address());
    assert_eq!(deal.deal.price, U256::from(10), "the provider's price");
    assert_eq!(deal.deal.jobHash, spec.content_hash());
    assert_eq!(deal.deal.mediators, vec![mediator()]);
    let domain = dcn::chain::deals::domain(1337, Address::repeat_byte(0xde));
    assert_eq!(dcn::chain::deals::deal_id(&deal.deal, &domain), deal_id, "id is the contract's EIP-712 digest");

    // Only the provider's signature is taken.
    let stranger = PrivateKeySigner::random();
    assert_eq!(refused(s.client.sign_deal(&stranger, deal_id).await.unwrap_err()), (401, "wrong_signer".into()));
    let signed = s.client.sign_deal(&provider, deal_id).await.unwrap();
    assert_eq!(signed.state, DealStatus::Signed);
    let sig = signed.provider_signature.clone().unwrap();
    let recovered = dcn::protocol::recover(&deal_id, &sig).unwrap();
    assert_eq!(recovered, provider.address());
    // Signing again is idempotent.
    assert_eq!(s.client.sign_deal(&provider, deal_id).await.unwrap().state, DealStatus::Signed);

    // Lists and filters.
    let by_party = s.client.deals(Some(creator.address()), 0).await.unwrap();
    assert_eq!(by_party.len(), 1);
    assert!(s.client.deals(Some(stranger.address()), 0).await.unwrap().is_empty());
    let (status, list) = raw(reqwest::Method::GET, format!("{}/api/v1/deals?state=signed", s.url()), None).await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
    let (status, list) =
        raw(reqwest::Method::GET, format!("{}/api/v1/resource_offers?owner={}", s.url(), provider.address()), None)
            .await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
    let (status, _) = raw(reqwest::Method::GET, format!("{}/api/v1/deals?state=nonsense", s.url()), None).await;
    assert_eq!(status, 400);

    // The second job waits: the only slot is taken.
    let spec2 = common::solver::spec("oink");
    let j2 = sign_job(job_offer(&creator, s.address(), &spec2), spec2.clone(), &creator, &s.client).await;
    assert_eq!(s.client.post_job_offer(&j2).await.unwrap().status, OfferStatus::Open);
}

#[tokio::test]
async fn refusals_have_their_code_and_store_nothing() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let url = format!("{}/api/v1/resource_offers", s.url());
    let good = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    let good_json = serde_json::to_value(&good).unwrap();

    let mut bad_sig = good_json.clone();
    bad_sig["signature"] = json!("0x1234");
    let mut tampered = good_json.clone();
    tampered["offer"]["price"] = json!("0x1");
    let other = PrivateKeySigner::random();
    let by_other = sign_resource(resource_offer(&provider, s.address()), &other, &s.client).await;
    let mut expired = resource_offer(&provider, s.address());
    expired.expiry = now_secs() - 1;
    let expired = sign_resource(expired, &provider, &s.client).await;
    let mut far = resource_offer(&provider, s.address());
    far.expiry = now_secs() + 100_000;
    let far = sign_resource(far, &provider, &s.client).await;
    let other_solver = sign_resource(resource_offer(&provider, Address::repeat_byte(9)), &provider, &s.client).await;
    let mut no_slots = resource_offer(&provider, s.address());
    no_slots.slots = 0;
    let no_slots = sign_resource(no_slots, &provider, &s.client).await;
    let mut wrong_type = good_json.clone();
    wrong_type["offer"]["cpu"] = json!("lots");
    let mut unknown_field = good_json.clone();
    unknown_field["offer"]["colour"] = json!("red");

    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("bad signature", bad_sig.to_string(), 401, "bad_signature"),
        ("tampered offer", tampered.to_string(), 401, "wrong_signer"),
        ("signed by another account", serde_json::to_string(&by_other).unwrap(), 401, "wrong_signer"),
        ("expired", serde_json::to_string(&expired).unwrap(), 400, "expired"),
        ("far future", serde_json::to_string(&far).unwrap(), 400, "expiry_too_far"),
        ("another solver", serde_json::to_string(&other_solver).unwrap(), 400, "wrong_solver"),
        ("no slots", serde_json::to_string(&no_slots).unwrap(), 422, "invalid_field"),
        ("malformed JSON", "{\"offer\": ".into(), 400, "malformed_json"),
        ("wrong types", wrong_type.to_string(), 422, "invalid_body"),
        ("unknown field", unknown_field.to_string(), 422, "invalid_body"),
        ("oversize body", format!("{{\"x\": \"{}\"}}", "a".repeat(100 * 1024)), 413, "body_too_large"),
    ];
    for (what, body, status, code) in cases {
        let (got, v) = raw(reqwest::Method::POST, url.clone(), Some(body)).await;
        assert_eq!((got, v["error"].as_str().unwrap_or("")), (status, code), "{what}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what} explains itself");
    }
    let (got, v) = raw(reqwest::Method::GET, format!("{}/api/v1/nothing", s.url()), None).await;
    assert_eq!((got, v["error"].as_str().unwrap()), (404, "no_route"));
    let (got, v) = raw(reqwest::Method::PATCH, url.clone(), None).await;
    assert_eq!((got, v["error"].as_str().unwrap()), (405, "method_not_allowed"));
    let (got, v) = raw(reqwest::Method::GET, format!("{}/api/v1/deals/0x12", s.url()), None).await;
    assert_eq!((got, v["error"].as_str().unwrap()), (400, "bad_parameter"));
    let resp = reqwest::Client::new().post(url.clone()).body(good_json.to_string()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 415, "JSON without a content type");

    assert_eq!(event_count(&s).await, 0, "nothing was stored");
    let (_, list) = raw(reqwest::Method::GET, url.clone(), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    // The good one goes in; its replay does not.
    s.client.post_resource_offer(&good).await.unwrap();
    assert_eq!(refused(s.client.post_resource_offer(&good).await.unwrap_err()), (409, "nonce_reused".into()));
    assert_eq!(event_count(&s).await, 1);
}

#[tokio::test]
async fn cancel_only_by_the_owner_with_a_fresh_signature() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    let id = s.client.post_resource_offer(&r).await.unwrap().id;
    let path = format!("/api/v1/resource_offers/{id}");

    let (status, v) = raw(reqwest::Method::DELETE, format!("{}{path}", s.url()), None).await;
    assert_eq!((status, v["error"].as_str().unwrap()), (401, "missing_auth"));
    let stranger = PrivateKeySigner::random();
    assert_eq!(refused(s.client.cancel_offer(&stranger, id, OfferKind::Resource).await.unwrap_err()).0, 403);
    assert_eq!(refused(s.client.cancel_offer(&provider, id, OfferKind::Job).await.unwrap_err()).0, 404, "wrong kind");

    // A signature for another path does not cancel this one.
    let auth = AuthHeaders::sign(
        &provider,
        "DELETE",
        "/api/v1/job_offers/0x00",
        EMPTY_BODY,
        now_secs() + 60,
        &s.client.domain(),
    )
    .await
    .unwrap();
    let mut req = reqwest::Client::new().delete(format!("{}{path}", s.url()));
    for (k, v) in auth.to_pairs() {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 401);

    let cancelled = s.client.cancel_offer(&provider, id, OfferKind::Resource).await.unwrap();
    assert_eq!(cancelled.status(), OfferStatus::Cancelled);
    assert_eq!(refused(s.client.cancel_offer(&provider, id, OfferKind::Resource).await.unwrap_err()).0, 409);

    // A cancelled offer is not matched.
    let creator = PrivateKeySigner::random();
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    assert_eq!(s.client.post_job_offer(&j).await.unwrap().status, OfferStatus::Open);
}

#[tokio::test]
async fn limits_answer_413_and_429() {
    let s = TestSolver::start_with(|core, limits| {
        core.max_open_offers = 2;
        limits.rate_per_sec = 0.01;
        limits.rate_burst = 3.0;
    })
    .await;
    let provider = PrivateKeySigner::random();
    for _ in 0..2 {
        let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
        s.client.post_resource_offer(&r).await.unwrap();
    }
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    assert_eq!(refused(s.client.post_resource_offer(&r).await.unwrap_err()), (429, "too_many_offers".into()));
    // That was the third request: the burst is spent.
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    assert_eq!(refused(s.client.post_resource_offer(&r).await.unwrap_err()), (429, "rate_limited".into()));
    // Other accounts are not held back.
    let other = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&other, s.address()), &other, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();
}

#[tokio::test]
async fn results_go_up_from_the_provider_and_down_to_the_job_creator_only() {
    let s = TestSolver::start_with(|_, limits| limits.max_result_bytes = 4096).await;
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let deal = s.client.post_job_offer(&j).await.unwrap().deal.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.tar");
    std::fs::write(&bundle, b"pretend this is a bundle").unwrap();
    let big = dir.path().join("big.tar");
    std::fs::write(&big, vec![7u8; 5000]).unwrap();

    // Not before the deal is on chain (THREATS V4): proposed, then signed.
    assert_eq!(refused(s.client.upload_result(&provider, deal, &bundle).await.unwrap_err()).0, 409);
    s.client.sign_deal(&provider, deal).await.unwrap();
    assert_eq!(refused(s.client.upload_result(&provider, deal, &bundle).await.unwrap_err()).0, 409);
    s.created_on_chain(deal);
    assert_eq!(refused(s.client.upload_result(&creator, deal, &bundle).await.unwrap_err()).0, 403);
    assert_eq!(
        refused(s.client.upload_result(&provider, deal, &big).await.unwrap_err()),
        (413, "body_too_large".into())
    );
    let dest = dir.path().join("down.tar");
    assert_eq!(refused(s.client.download_result(&creator, deal, &dest).await.unwrap_err()).0, 404, "none yet");

    let rec = s.client.upload_result(&provider, deal, &bundle).await.unwrap();
    assert_eq!(rec.size, 24);
    // Not replaced; the answer has its own code and names the bundle the solver holds.
    match s.client.upload_result(&provider, deal, &big).await.unwrap_err() {
        ClientError::ResultExists { sha256 } => assert_eq!(sha256, rec.sha256),
        other => panic!("expected result_exists, got {other:?}"),
    }

    let sha = s.client.download_result(&creator, deal, &dest).await.unwrap();
    assert_eq!(sha, rec.sha256);
    assert_eq!(std::fs::read(&dest).unwrap(), b"pretend this is a bundle");
    let stranger = PrivateKeySigner::random();
    assert_eq!(refused(s.client.download_result(&stranger, deal, &dest).await.unwrap_err()).0, 403);
    assert_eq!(refused(s.client.download_result(&provider, deal, &dest).await.unwrap_err()).0, 403);
    assert!(!s.dir.path().join("results/incoming").read_dir().unwrap().any(|_| true), "no partial file left");
}

#[tokio::test]
async fn a_reconnecting_subscriber_gets_every_missed_event_once() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    let offer_id = s.client.post_resource_offer(&r).await.unwrap().id;

    let mut events = s.client.events(provider.address(), 0).await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    assert!(matches!(first.kind, EventKind::OfferPosted { offer, .. } if offer == offer_id));

    // Live: a match reaches the provider.
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let deal = s.client.post_job_offer(&j).await.unwrap().deal.unwrap();
    let e = events.next().await.unwrap().unwrap();
    assert!(matches!(&e.kind, EventKind::Deal { deal: d } if d.id == deal && d.state == DealStatus::Proposed), "{e:?}");
    let last = events.last();
    drop(events);

    // Missed while away: a signature, the deal on chain, a result, other offers of the
    // provider; noise for others.
    s.client.sign_deal(&provider, deal).await.unwrap();
    s.created_on_chain(deal);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b"), b"x").unwrap();
    s.client.upload_result(&provider, deal, &dir.path().join("b")).await.unwrap();
    for _ in 0..3 {
        let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
        s.client.post_resource_offer(&r).await.unwrap();
        let other = PrivateKeySigner::random();
        let r = sign_resource(resource_offer(&other, s.address()), &other, &s.client).await;
        s.client.post_resource_offer(&r).await.unwrap();
    }

    let mut events = s.client.events(provider.address(), last).await.unwrap();
    let mut seqs = vec![];
    let mut kinds = vec![];
    for _ in 0..6 {
        let e =
            tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
        assert!(e.accounts.contains(&provider.address()));
        seqs.push(e.seq);
        kinds.push(serde_json::to_value(&e).unwrap()["type"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds, ["deal", "deal", "result_uploaded", "offer_posted", "offer_posted", "offer_posted"]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > last, "in order, after {last}: {seqs:?}");
    // And then live again, nothing repeated.
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
    assert!(e.seq > seqs[5]);
    assert!(matches!(e.kind, EventKind::OfferPosted { .. }));
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();

    let (status, v) = raw(reqwest::Method::GET, format!("{}/healthz", s.url()), None).await;
    assert_eq!((status, v["status"].as_str().unwrap()), (200, "ok"));
    let metrics = reqwest::get(format!("{}/metrics", s.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dcn_solver_open_offers{kind=\"resource\"} 1"), "{metrics}");
    assert!(metrics.contains("dcn_solver_deals{state=\"accepted\"} 0"));
    assert!(metrics.contains(
        "dcn_solver_http_requests_total{route=\"/api/v1/resource_offers\",method=\"POST\",status=\"201\"} 1"
    ));
    assert!(metrics.contains("dcn_solver_http_request_seconds_count"));
    // Made-up methods are one labelled series, whatever their names (THREATS V3).
    for method in ["BREW", "WHEN"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        reqwest::Client::new().request(m, format!("{}/healthz", s.url())).send().await.unwrap();
    }
    let metrics = reqwest::get(format!("{}/metrics", s.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("route=\"/healthz\",method=\"other\",status=\"405\"} 2"), "{metrics}");
    assert!(!metrics.contains("BREW"));
    let page = reqwest::get(format!("{}/", s.url())).await.unwrap().text().await.unwrap();
    assert!(page.contains("<title>dcn solver</title>"));
    let (_, info) = raw(reqwest::Method::GET, format!("{}/api/v1/info", s.url()), None).await;
    assert_eq!(info["solver"].as_str().unwrap().parse::<Address>().unwrap(), s.address());

    // Offer lookups by id and kind.
    let id = s.client.offer(r.id(&s.client.domain()), OfferKind::Resource).await.unwrap();
    assert!(matches!(id, OfferRecord::Resource(_)));
    assert_eq!(refused(s.client.offer(B256::ZERO, OfferKind::Resource).await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn a_provider_refuses_a_proposal_with_its_reason_and_the_job_goes_to_another() {
    let s = TestSolver::start().await;
    let (first, second) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let creator = PrivateKeySigner::random();
    for p in [&first, &second] {
        let r = sign_resource(resource_offer(p, s.address()), p, &s.client).await;
        s.client.post_resource_offer(&r).await.unwrap();
    }
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let deal_id = s.client.post_job_offer(&j).await.unwrap().deal.expect("matched at once");
    let deal = s.client.deal(deal_id).await.unwrap();
    let (provider, other) = if deal.deal.provider == first.address() { (&first, &second) } else { (&second, &first) };

    // Only its provider refuses it, with a fresh signed request.
    let stranger = PrivateKeySigner::random();
    assert_eq!(refused(s.client.refuse_deal(&stranger, deal_id, "no").await.unwrap_err()).0, 403);
    let why = format!("this machine cannot run the job: {}", "x".repeat(600));
    let refusal = s.client.refuse_deal(provider, deal_id, &why).await.unwrap();
    assert_eq!(refusal.state, DealStatus::Expired);
    assert_eq!(refusal.refusal.as_deref(), Some(&why[..512]), "kept, at most 512 bytes");
    assert_eq!(s.client.deal(deal_id).await.unwrap().refusal.as_deref(), Some(&why[..512]));
    // Refused once: it is not proposed any more.
    assert_eq!(refused(s.client.refuse_deal(provider, deal_id, "again").await.unwrap_err()).0, 409);
    // The job went to the other provider at once, not after the sign timeout.
    let OfferRecord::Job(job) = s.client.offer(j.id(&s.client.domain()), OfferKind::Job).await.unwrap() else {
        panic!("a job offer")
    };
    let again = s.client.deal(job.deal.expect("matched again")).await.unwrap();
    assert_eq!((again.deal.provider, again.state), (other.address(), DealStatus::Proposed));
}

/// A request from `from` (a loopback address: 127.0.0.0/8 all reaches this host), signed by
/// `signer` but naming `account` in its headers, signing the body sha256 `signed_body` and
/// sending `body`.
async fn signed_raw(
    s: &TestSolver,
    from: [u8; 4],
    signer: &PrivateKeySigner,
    account: Address,
    method: reqwest::Method,
    path: &str,
    (signed_body, body): (B256, Vec<u8>),
) -> reqwest::Response {
    let mut auth = AuthHeaders::sign(signer, method.as_str(), path, signed_body, now_secs() + 60, &s.client.domain())
        .await
        .unwrap();
    auth.account = account;
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap();
    let mut req = client.request(method, format!("{}{path}", s.url())).body(body);
    for (k, v) in auth.to_pairs() {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

/// THREATS V1: junk signatures naming an account are refused before its requests are
/// counted, so a stranger cannot spend them: the account's own requests still go through.
#[tokio::test]
async fn junk_signatures_naming_an_account_do_not_spend_its_requests() {
    let s = TestSolver::start_with(|_, limits| {
        limits.rate_per_sec = 0.01;
        limits.rate_burst = 2.0;
    })
    .await;
    let victim = PrivateKeySigner::random();
    let attacker = PrivateKeySigner::random();
    for _ in 0..10 {
        let path = format!("/api/v1/resource_offers/{}", B256::random());
        let resp = signed_raw(
            &s,
            [127, 0, 0, 9],
            &attacker,
            victim.address(),
            reqwest::Method::DELETE,
            &path,
            (EMPTY_BODY, vec![]),
        )
        .await;
        assert_eq!(resp.status().as_u16(), 401);
    }
    // The victim's whole burst is left: an offer and its cancellation.
    let r = sign_resource(resource_offer(&victim, s.address()), &victim, &s.client).await;
    let id = s.client.post_resource_offer(&r).await.unwrap().id;
    s.client.cancel_offer(&victim, id, OfferKind::Resource).await.unwrap();
    // And then it is limited, with the time to wait.
    let e = s.client.cancel_offer(&victim, id, OfferKind::Resource).await.unwrap_err();
    match e {
        ClientError::Refused { status: 429, retry_after: Some(secs), .. } => assert!(secs > 8, "{secs}"),
        other => panic!("expected 429 with Retry-After, got {other:?}"),
    }
}

/// THREATS V1: a signed request seen on the way and replayed is refused as used before the
/// account's requests are counted, so replays cannot spend them either.
#[tokio::test]
async fn replayed_requests_do_not_spend_the_accounts_requests() {
    let s = TestSolver::start_with(|_, limits| {
        limits.rate_per_sec = 0.01;
        limits.rate_burst = 3.0;
    })
    .await;
    let victim = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&victim, s.address()), &victim, &s.client).await;
    let id = s.client.post_resource_offer(&r).await.unwrap().id;
    let path = format!("/api/v1/resource_offers/{id}");
    let auth =
        AuthHeaders::sign(&victim, "DELETE", &path, EMPTY_BODY, now_secs() + 60, &s.client.domain()).await.unwrap();
    let send = || async {
        let mut req = reqwest::Client::new().delete(format!("{}{path}", s.url()));
        for (k, v) in auth.to_pairs() {
            req = req.header(k, v);
        }
        req.send().await.unwrap().status().as_u16()
    };
    assert_eq!(send().await, 200, "the victim's own cancel");
    for _ in 0..10 {
        assert_eq!(send().await, 409, "a replay is refused as used");
    }
    // The victim's third request still goes through.
    let r = sign_resource(resource_offer(&victim, s.address()), &victim, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();
}

/// THREATS V1: every client address has its own budget, taken before any other work; the
/// 429 says when to come back, and other addresses are served meanwhile.
#[tokio::test]
async fn each_client_address_is_limited_and_told_when_to_retry() {
    let s = TestSolver::start_with(|_, limits| {
        limits.ip_rate_per_sec = 0.01;
        limits.ip_rate_burst = 3.0;
    })
    .await;
    let get = |from: [u8; 4]| {
        let url = format!("{}/api/v1/info", s.url());
        async move {
            let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap();
            client.get(url).send().await.unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(get([127, 0, 0, 2]).await.status().as_u16(), 200);
    }
    let refused = get([127, 0, 0, 2]).await;
    assert_eq!(refused.status().as_u16(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((90..=100).contains(&wait), "{wait}");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "rate_limited");
    // Junk signed requests from a spent address cost no signature check either.
    let junk = PrivateKeySigner::random();
    let resp = signed_raw(
        &s,
        [127, 0, 0, 2],
        &junk,
        junk.address(),
        reqwest::Method::GET,
        "/api/v1/deals/0x01/result",
        (EMPTY_BODY, vec![]),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(get([127, 0, 0, 3]).await.status().as_u16(), 200, "another address is served");
}

/// THREATS V1: the project's client waits as the solver's 429 asks and tries again.
#[tokio::test]
async fn the_client_retries_a_busy_solver_after_the_time_it_asks() {
    let s = TestSolver::start_with(|_, limits| {
        limits.ip_rate_per_sec = 1.0;
        limits.ip_rate_burst = 2.0;
    })
    .await;
    // The test client's connection took one request; this takes the other.
    assert!(s.client.deal(B256::random()).await.unwrap_err().is_not_found());
    let started = std::time::Instant::now();
    let e = s.client.deal(B256::random()).await.unwrap_err();
    assert!(e.is_not_found(), "answered after waiting, not refused: {e:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "{:?}", started.elapsed());
}

/// A signed request covers its body: a refusal reason or a bundle swapped on the way is
/// refused, and nothing of it is kept.
#[tokio::test]
async fn a_body_other_than_the_signed_one_is_refused() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let deal = s.client.post_job_offer(&j).await.unwrap().deal.unwrap();

    let path = format!("/api/v1/deals/{deal}/refusal");
    let signed = body_sha256(br#"{"reason":"no GPU"}"#);
    let resp = signed_raw(
        &s,
        [127, 0, 0, 1],
        &provider,
        provider.address(),
        reqwest::Method::POST,
        &path,
        (signed, br#"{"reason":"the job creator is a thief"}"#.to_vec()),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "body_mismatch");
    assert_eq!(s.client.deal(deal).await.unwrap().state, DealStatus::Proposed, "not refused");

    s.client.sign_deal(&provider, deal).await.unwrap();
    s.created_on_chain(deal);
    let path = format!("/api/v1/deals/{deal}/result");
    let resp = signed_raw(
        &s,
        [127, 0, 0, 1],
        &provider,
        provider.address(),
        reqwest::Method::PUT,
        &path,
        (body_sha256(b"the bundle"), b"another bundle".to_vec()),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "body_mismatch");
    assert!(!s.dir.path().join("results/incoming").read_dir().unwrap().any(|_| true), "no partial file left");
    assert_eq!(std::fs::read_dir(s.dir.path().join("results")).unwrap().count(), 1, "only incoming/, no bundle");
    // The provider's own upload still goes through once.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.tar"), b"the bundle").unwrap();
    s.client.upload_result(&provider, deal, &dir.path().join("b.tar")).await.unwrap();
}

/// THREATS V6: a hostile solver's endless answer is cut at the client's cap.
#[tokio::test]
async fn the_client_reads_at_most_its_cap_of_a_hostile_answer() {
    use axum::routing::get;
    let info = json!({
        "solver": Address::repeat_byte(1), "chain_id": 1337, "deals_contract": Address::repeat_byte(2),
        "offer_max_ahead_secs": 60,
    });
    let app = axum::Router::new().route("/api/v1/info", get(move || async move { axum::Json(info) })).route(
        "/api/v1/deals/{id}",
        get(|| async {
            // 1 GiB of JSON string, streamed: the client must stop long before its end.
            let chunks = futures_util::stream::iter((0..(1u32 << 14)).map(|i| {
                let chunk = if i == 0 { b"\"".to_vec() } else { vec![b'a'; 1 << 16] };
                Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk))
            }));
            axum::body::Body::from_stream(chunks)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = dcn::protocol::SolverClient::connect(&url).await.unwrap();
    match client.deal(B256::random()).await.unwrap_err() {
        ClientError::Decode(why) => assert!(why.contains("over 16777216 bytes"), "{why}"),
        other => panic!("expected the cap, got {other:?}"),
    }
}

/// A deal the chain has created, signed by a fresh provider: what uploads need.
async fn created_deal(s: &TestSolver) -> (PrivateKeySigner, B256) {
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    s.client.post_resource_offer(&r).await.unwrap();
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let deal = s.client.post_job_offer(&j).await.unwrap().deal.unwrap();
    s.client.sign_deal(&provider, deal).await.unwrap();
    s.created_on_chain(deal);
    (provider, deal)
}

/// THREATS V4: one upload per deal at a time, its room reserved before the body streams,
/// and none past the solver's total.
#[tokio::test]
async fn uploads_go_one_at_a_time_per_deal_and_within_the_total() {
    let s = TestSolver::start_with(|_, limits| limits.max_stored_result_bytes = 100).await;
    let (provider, deal) = created_deal(&s).await;
    let path = format!("/api/v1/deals/{deal}/result");
    let bundle = b"a bundle that arrives slowly".to_vec();
    let auth = AuthHeaders::sign(&provider, "PUT", &path, body_sha256(&bundle), now_secs() + 60, &s.client.domain())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let mut slow = reqwest::Client::new()
        .put(format!("{}{path}", s.url()))
        .header("content-length", bundle.len())
        .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)));
    for (k, v) in auth.to_pairs() {
        slow = slow.header(k, v);
    }
    let slow = tokio::spawn(slow.send());
    tx.send(Ok(bundle[..5].to_vec())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.tar"), &bundle).unwrap();
    // The first upload's room is reserved while its body is still on the way.
    for _ in 0..500 {
        if s.solver.state.0.results_space.used() == bundle.len() as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s.solver.state.0.results_space.used(), bundle.len() as u64);
    let e = s.client.upload_result(&provider, deal, &dir.path().join("b.tar")).await.unwrap_err();
    assert_eq!(refused(e), (409, "upload_in_progress".into()));
    tx.send(Ok(bundle[5..].to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap().status().as_u16(), 201);

    // 28 bytes kept of 100: a 73-byte bundle for another deal has no room.
    let (provider, deal) = created_deal(&s).await;
    std::fs::write(dir.path().join("c.tar"), vec![1u8; 73]).unwrap();
    let e = s.client.upload_result(&provider, deal, &dir.path().join("c.tar")).await.unwrap_err();
    assert_eq!(refused(e), (507, "results_full".into()));
    std::fs::write(dir.path().join("c.tar"), vec![1u8; 72]).unwrap();
    s.client.upload_result(&provider, deal, &dir.path().join("c.tar")).await.unwrap();
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A WebSocket from the loopback address `from` to the solver's event stream.
async fn subscribe_from(
    s: &TestSolver,
    from: [u8; 4],
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let stream = socket.connect(s.solver.addr).await.unwrap();
    let url = format!("ws://{}/api/v1/events?address={}", s.solver.addr, Address::ZERO);
    tokio_tungstenite::client_async(url, stream).await.map(|(ws, _)| ws)
}

/// THREATS V5: event streams are capped per client address, and a subscriber that sends
/// more than a small message is dropped.
#[tokio::test]
async fn event_streams_are_capped_per_address_and_take_only_small_messages() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Error, Message};
    let s = TestSolver::start_with(|_, limits| limits.max_subscriptions_per_address = 2).await;
    let first = subscribe_from(&s, [127, 0, 0, 6]).await.unwrap();
    let _second = subscribe_from(&s, [127, 0, 0, 6]).await.unwrap();
    match subscribe_from(&s, [127, 0, 0, 6]).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    let mut other = subscribe_from(&s, [127, 0, 0, 7]).await.unwrap();
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if let Ok(ws) = subscribe_from(&s, [127, 0, 0, 6]).await {
            again = Some(ws);
            break;
        }
    }
    assert!(again.is_some(), "a closed stream gives its place back");

    other.send(Message::Text("x".repeat(10_000).into())).await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match other.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversized message ended the stream");

    // Many at once from a fresh address: only as many as the cap are told `101`, and
    // each of those keeps its stream (none is upgraded and then closed for want of room).
    let at_once = futures_util::future::join_all((0..12).map(|_| subscribe_from(&s, [127, 0, 0, 8]))).await;
    let mut held: Vec<_> = at_once.into_iter().filter_map(Result::ok).collect();
    assert_eq!(held.len(), 2, "two streams from one address, however fast they come");
    for ws in &mut held {
        let next = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await;
        assert!(next.is_err(), "an admitted stream stays open: {next:?}");
    }
}

/// THREATS V3: a spec over 64 KiB is refused whatever the body limit, and the solver takes
/// no more open offers than its total from everyone.
#[tokio::test]
async fn specs_and_open_offers_have_caps() {
    let s = TestSolver::start_with(|core, limits| {
        core.max_open_offers_total = 2;
        limits.max_body_bytes = 1 << 20;
    })
    .await;
    let creator = PrivateKeySigner::random();
    let mut big = spec("moo");
    big.argv.push("m".repeat(70 * 1024));
    let j = sign_job(job_offer(&creator, s.address(), &big), big.clone(), &creator, &s.client).await;
    let e = refused(s.client.post_job_offer(&j).await.unwrap_err());
    assert_eq!(e, (422, "invalid_field".into()));
    for _ in 0..2 {
        let provider = PrivateKeySigner::random();
        let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
        s.client.post_resource_offer(&r).await.unwrap();
    }
    let provider = PrivateKeySigner::random();
    let r = sign_resource(resource_offer(&provider, s.address()), &provider, &s.client).await;
    assert_eq!(refused(s.client.post_resource_offer(&r).await.unwrap_err()), (503, "solver_full".into()));
}

/// THREATS V2: offers backed by nothing are refused before they are stored; an offer is
/// taken once the owner deposits; a resource offer whose provider withdraws closes within
/// one escrow period; slots held by live deals need no collateral.
#[tokio::test]
async fn offers_are_taken_only_while_their_owners_escrow_backs_them() {
    let s = TestSolver::start().await;
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    s.escrow.set(provider.address(), U256::ZERO);
    s.escrow.set(creator.address(), U256::from(99));
    let before = event_count(&s).await;

    // Two slots of collateral 20 need 40; 39 is short.
    let mut two_slots = resource_offer(&provider, s.address());
    two_slots.slots = 2;
    s.escrow.set(provider.address(), U256::from(39));
    let r = sign_resource(two_slots.clone(), &provider, &s.client).await;
    let e = s.client.post_resource_offer(&r).await.unwrap_err();
    assert!(e.to_string().contains("deposit into escrow"), "{e}");
    assert_eq!(refused(e), (402, "escrow_short".into()));
    // A job offer paying at most 100 needs 100; 99 is short.
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    assert_eq!(refused(s.client.post_job_offer(&j).await.unwrap_err()), (402, "escrow_short".into()));
    assert_eq!(event_count(&s).await, before, "nothing stored");

    // A deposit counts at once, however recently the short value was read.
    s.escrow.set(provider.address(), U256::from(40));
    let posted = s.client.post_resource_offer(&r).await.unwrap();
    assert_eq!(posted.status, OfferStatus::Open);
    s.escrow.set(creator.address(), U256::from(100));
    let job = s.client.post_job_offer(&j).await.unwrap();
    let deal = job.deal.expect("matched with the backed offer");

    // The provider withdraws to 20: one slot is held by the live deal, so 20 still backs
    // the other, and the offer stays open over several escrow periods.
    s.escrow.set(provider.address(), U256::from(20));
    tokio::time::sleep(escrow_ttl() * 4).await;
    let open = |o: OfferRecord| o.status();
    assert_eq!(open(s.client.offer(posted.id, OfferKind::Resource).await.unwrap()), OfferStatus::Open);
    // Withdrawn to 19, the free slot is not backed: the offer closes, with an event, and a
    // new job waits instead of matching it.
    s.escrow.set(provider.address(), U256::from(19));
    let closed = || async { open(s.client.offer(posted.id, OfferKind::Resource).await.unwrap()) };
    let deadline = std::time::Instant::now() + escrow_ttl() * 20;
    while closed().await != OfferStatus::Cancelled {
        assert!(std::time::Instant::now() < deadline, "the unbacked offer was not closed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let j2 = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    assert_eq!(s.client.post_job_offer(&j2).await.unwrap().status, OfferStatus::Open, "not matched");
    let events = s.solver.state.0.store.events_for(provider.address(), before, 100).unwrap();
    assert!(events.iter().any(|e| matches!(e.kind, EventKind::OfferCancelled { offer } if offer == posted.id)));
    assert_eq!(s.client.deal(deal).await.unwrap().state, DealStatus::Proposed, "the live deal goes on");
}

/// Result bundles go once their deals are settled and the retention is over: a bundle two
/// deals share stays until both are done, its room goes back to the quota, and a late
/// download says why it is gone. Without this the quota filled for good and every later
/// upload was refused, so honest providers could not deliver.
#[tokio::test]
async fn settled_results_are_deleted_after_their_retention_and_free_the_quota() {
    let s = TestSolver::start_with(|core, _| core.result_retention_secs = 1).await;
    let provider = PrivateKeySigner::random();
    let creator = PrivateKeySigner::random();
    let mut offer = resource_offer(&provider, s.address());
    offer.slots = 2;
    s.client.post_resource_offer(&sign_resource(offer, &provider, &s.client).await).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.tar");
    std::fs::write(&bundle, b"the same bytes for both deals").unwrap();
    let mut deals = vec![];
    for message in ["one", "two"] {
        let spec = spec(message);
        let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
        let deal = s.client.post_job_offer(&j).await.unwrap().deal.unwrap();
        s.client.sign_deal(&provider, deal).await.unwrap();
        s.created_on_chain(deal);
        s.client.upload_result(&provider, deal, &bundle).await.unwrap();
        deals.push(deal);
    }
    let space = || s.solver.state.0.results_space.used();
    assert_eq!(space(), 29, "one file, counted once");
    let file = s
        .dir
        .path()
        .join("results")
        .join(dcn::solver::api::bundle_name(&dcn::protocol::body_sha256(&std::fs::read(&bundle).unwrap())));
    assert!(file.exists());
    let settle = |deal| {
        let accepted = DealStatus::Accepted;
        s.solver.state.core().chain_state(deal, accepted, dcn::clock::now_ms()).unwrap();
    };

    settle(deals[0]);
    let dest = dir.path().join("down.tar");
    let waited = std::time::Instant::now();
    while refused_or_ok(s.client.download_result(&creator, deals[0], &dest).await) != 404 {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "the settled result was not forgotten");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let e = s.client.download_result(&creator, deals[0], &dest).await.unwrap_err();
    assert!(e.to_string().contains("results are kept 0 hours after a deal is settled"), "{e}");
    assert!(file.exists(), "the other deal still holds the bundle");
    assert_eq!(s.client.download_result(&creator, deals[1], &dest).await.unwrap(), rec_sha(&bundle));

    settle(deals[1]);
    let waited = std::time::Instant::now();
    while file.exists() {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "the bundle was not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(space(), 0, "its room is back in the quota");
}

fn refused_or_ok<T>(r: Result<T, ClientError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => refused(e).0,
    }
}

fn rec_sha(path: &std::path::Path) -> B256 {
    dcn::protocol::body_sha256(&std::fs::read(path).unwrap())
}

/// A provider uploads right after its hash is on chain, before the solver's chain follower
/// can have seen the block that created the deal: the solver reads the deal's state once
/// and takes the upload at once. A deal the chain does not have is still refused (THREATS
/// V4: no disk for deals that never reach the chain).
#[tokio::test]
async fn an_upload_that_arrives_before_the_follower_is_checked_on_chain_once() {
    use dcn::chain::DealState;
    let chain = Arc::new(DealStates::default());
    let s = TestSolver::start_with_chain(chain.clone()).await;
    let signed_deal = |s: &TestSolver| {
        let (provider, creator) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let address = s.address();
        let client = s.client.clone();
        async move {
            let r = sign_resource(resource_offer(&provider, address), &provider, &client).await;
            client.post_resource_offer(&r).await.unwrap();
            let spec = spec("moo");
            let j = sign_job(job_offer(&creator, address, &spec), spec.clone(), &creator, &client).await;
            let deal = client.post_job_offer(&j).await.unwrap().deal.unwrap();
            client.sign_deal(&provider, deal).await.unwrap();
            (provider, deal)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar");
    std::fs::write(&bundle, b"a bundle").unwrap();

    // Not on chain: refused, and the deal stays signed.
    let (provider, deal) = signed_deal(&s).await;
    assert_eq!(refused(s.client.upload_result(&provider, deal, &bundle).await.unwrap_err()).0, 409);
    assert_eq!(s.client.deal(deal).await.unwrap().state, DealStatus::Signed);
    assert_eq!(chain.reads(), 1);
    // Asked again at once: refused without another read (one a second per deal at most).
    assert_eq!(refused(s.client.upload_result(&provider, deal, &bundle).await.unwrap_err()).0, 409);
    assert_eq!(chain.reads(), 1, "no second read within the second");

    // On chain (result submitted), not yet followed: taken at once.
    let (provider, deal) = signed_deal(&s).await;
    chain.set(deal, DealState::ResultSubmitted);
    let rec = s.client.upload_result(&provider, deal, &bundle).await.unwrap();
    assert_eq!(rec.deal, deal);
    assert_eq!(s.client.deal(deal).await.unwrap().state, DealStatus::ResultSubmitted, "the state read was recorded");

    // Only the deal's provider makes the solver read the chain; a stranger is refused.
    let (_, deal) = signed_deal(&s).await;
    chain.set(deal, DealState::Created);
    let stranger = PrivateKeySigner::random();
    assert_eq!(refused(s.client.upload_result(&stranger, deal, &bundle).await.unwrap_err()).0, 403);
    assert_eq!(s.client.deal(deal).await.unwrap().state, DealStatus::Signed, "no read for a stranger");
    assert_eq!(chain.reads(), 2);
}

/// A matched deal between fresh accounts: (provider, job creator, deal id). The provider's
/// one-slot offer is posted first, so with `other` posted after it the job goes to it first.
async fn matched_deal(s: &TestSolver, other: Option<&PrivateKeySigner>) -> (PrivateKeySigner, PrivateKeySigner, B256) {
    let (provider, creator) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    for p in std::iter::once(&provider).chain(other) {
        let r = sign_resource(resource_offer(p, s.address()), p, &s.client).await;
        s.client.post_resource_offer(&r).await.unwrap();
    }
    let spec = spec("moo");
    let j = sign_job(job_offer(&creator, s.address(), &spec), spec.clone(), &creator, &s.client).await;
    let deal = s.client.post_job_offer(&j).await.unwrap().deal.unwrap();
    assert_eq!(s.client.deal(deal).await.unwrap().deal.provider, provider.address());
    (provider, creator, deal)
}

/// THREATS N3: a deal signature that recovers to the provider but that `DcnDeals` refuses
/// (v 0 or 1, a high s, another length) is refused with its own code and nothing is
/// recorded, so such a provider captures no job.
#[tokio::test]
async fn a_deal_signature_the_contract_would_refuse_is_refused_and_nothing_recorded() {
    let s = TestSolver::start().await;
    let (provider, _, deal) = matched_deal(&s, None).await;
    let good = dcn::protocol::sign_digest(&provider, &deal).await.unwrap().to_vec();
    let mut low_v = good.clone();
    low_v[64] -= 27;
    let mut high_s = good.clone();
    let n = U256::from_str_radix("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16).unwrap();
    high_s[32..64].copy_from_slice(&(n - U256::from_be_slice(&good[32..64])).to_be_bytes::<32>());
    high_s[64] = if good[64] == 27 { 28 } else { 27 };
    assert_eq!(dcn::protocol::recover(&deal, &high_s.clone().into()).unwrap(), provider.address(), "it recovers");
    let mut long = good.clone();
    long.push(0);
    let before = event_count(&s).await;
    let url = format!("{}/api/v1/deals/{deal}/signature", s.url());
    for (what, sig) in [("v 0 or 1", low_v), ("high s", high_s), ("66 bytes", long), ("64 bytes", good[..64].to_vec())]
    {
        let body = json!({ "signature": alloy::hex::encode_prefixed(&sig) }).to_string();
        let (status, v) = raw(reqwest::Method::POST, url.clone(), Some(body)).await;
        assert_eq!((status, v["error"].as_str().unwrap_or("")), (422, "non_canonical_signature"), "{what}: {v}");
        assert!(v["message"].as_str().unwrap().contains("v 27 or 28"), "{what} says what to do: {v}");
    }
    let d = s.client.deal(deal).await.unwrap();
    assert_eq!((d.state, d.provider_signature), (DealStatus::Proposed, None), "nothing recorded");
    assert_eq!(event_count(&s).await, before);
    assert_eq!(s.client.sign_deal(&provider, deal).await.unwrap().state, DealStatus::Signed, "the canonical one is");
}

/// THREATS N3: a job creator reports that a signed deal cannot be created by its provider's
/// doing; the solver does not take its word. A false report strikes nobody; a true one (the
/// chain says the provider's escrow is short) strikes the provider and the job goes to
/// another. Only the deal's job creator is heard, and its reports cost at most one chain
/// read a second.
#[tokio::test]
async fn a_failure_report_strikes_the_provider_only_when_the_chain_bears_it_out() {
    use dcn::chain::{CreateCheck, ProviderFault};
    let chain = Arc::new(DealStates::default());
    let s = TestSolver::start_with_chain(chain.clone()).await;
    let report = |key: &PrivateKeySigner, deal: B256| {
        let (client, key) = (s.client.clone(), key.clone());
        async move { client.report_failure(&key, deal, true).await }
    };

    // A false report: the chain says the deal can be created.
    let (provider, creator, deal) = matched_deal(&s, None).await;
    assert_eq!(refused(report(&creator, deal).await.unwrap_err()).0, 409, "only a signed deal can fail");
    s.client.sign_deal(&provider, deal).await.unwrap();
    assert_eq!(refused(report(&provider, deal).await.unwrap_err()).0, 403, "only its job creator reports");
    assert_eq!(chain.checks(), 0, "no chain read for either");
    assert_eq!(refused(report(&creator, deal).await.unwrap_err()), (409, "no_provider_fault".into()));
    assert_eq!(chain.checks(), 1);
    let path = format!("/api/v1/deals/{deal}/failure");
    let body = serde_json::to_vec(&json!({ "rematch": true })).unwrap();
    let auth = AuthHeaders::sign(&creator, "POST", &path, body_sha256(&body), now_secs() + 60, &s.client.domain())
        .await
        .unwrap();
    let mut req =
        reqwest::Client::new().post(format!("{}{path}", s.url())).header("content-type", "application/json").body(body);
    for (k, v) in auth.to_pairs() {
        req = req.header(k, v);
    }
    let again = req.send().await.unwrap();
    assert_eq!(again.status().as_u16(), 429, "asked again at once");
    assert_eq!(chain.checks(), 1, "no second read within the second");
    assert_eq!(s.client.deal(deal).await.unwrap().state, DealStatus::Signed);
    assert_eq!(s.solver.state.core().strikes(&provider.address()), None, "an honest provider is not struck");

    // A true report: the chain says createDeal reverts on the provider's escrow.
    let other = PrivateKeySigner::random();
    let (provider, creator, deal) = matched_deal(&s, Some(&other)).await;
    s.client.sign_deal(&provider, deal).await.unwrap();
    chain.set_creation(deal, CreateCheck::ProviderFault(ProviderFault::EscrowShort));
    let ended = report(&creator, deal).await.unwrap();
    assert_eq!((ended.state, ended.fault), (DealStatus::Expired, Some(ProviderFault::EscrowShort)));
    assert_eq!(s.solver.state.core().strikes(&provider.address()).map(|s| s.count), Some(1), "struck");
    let deals = s.client.deals(Some(creator.address()), 0).await.unwrap();
    let next = deals.iter().find(|d| d.id != deal).expect("the job went to another provider");
    assert_eq!((next.deal.provider, next.state), (other.address(), DealStatus::Proposed));
    // Reported again: answered as it is, with no chain read and no second strike.
    assert_eq!(report(&creator, deal).await.unwrap().fault, Some(ProviderFault::EscrowShort));
    assert_eq!(chain.checks(), 2);
    assert_eq!(s.solver.state.core().strikes(&provider.address()).unwrap().count, 1);
}

/// THREATS N3: a provider that cancels a deal it signed (`DealCancelled` on chain) is struck
/// when the chain follower reads the deal's state, and the job goes to another provider.
#[tokio::test]
async fn a_signed_deal_its_provider_cancels_on_chain_strikes_it() {
    let chain = Arc::new(DealStates::default());
    let s = TestSolver::start_with_chain(chain.clone()).await;
    let other = PrivateKeySigner::random();
    let (provider, creator, deal) = matched_deal(&s, Some(&other)).await;
    s.client.sign_deal(&provider, deal).await.unwrap();
    chain.set(deal, dcn::chain::DealState::Cancelled);
    s.solver.state.refresh_deal(chain.as_ref(), deal).await.unwrap();
    let ended = s.client.deal(deal).await.unwrap();
    assert_eq!((ended.state, ended.fault), (DealStatus::Expired, Some(dcn::chain::ProviderFault::Cancelled)));
    assert_eq!(s.solver.state.core().strikes(&provider.address()).map(|s| s.count), Some(1));
    let deals = s.client.deals(Some(creator.address()), 0).await.unwrap();
    assert!(deals.iter().any(|d| d.deal.provider == other.address()), "the job went to another provider");
}
