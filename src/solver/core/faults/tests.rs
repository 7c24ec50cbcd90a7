//! A provider's signed deals that fail on chain by its doing strike it, as lapses do.

use super::super::tests::{core, deal_of, job, offer, post_j, post_r, resource, T0};
use super::super::*;
use crate::chain::ProviderFault;
use crate::solver::store::MemoryStore;
use alloy::primitives::Bytes;

/// As if the provider of deal `id` signed it at `now_ms` (the core takes the record as is).
fn signed(c: &mut Core, id: B256, now_ms: u64) {
    let d = DealRecord {
        state: DealStatus::Signed,
        provider_signature: Some(Bytes::from(vec![1; 65])),
        ..deal_of(c, &id).unwrap()
    };
    let mut txn = c.txn(now_ms);
    c.set_deal(&mut txn, d);
    c.commit(txn).unwrap();
}

fn job_record(c: &Core, n: u8) -> JobOfferRecord {
    match offer(c, &job(n).1).unwrap() {
        OfferRecord::Job(j) => j,
        other => panic!("not a job offer: {other:?}"),
    }
}

#[test]
fn a_signed_deal_its_provider_cancels_on_chain_strikes_it_and_the_job_goes_to_another() {
    let mut c = core(Arc::new(MemoryStore::new()));
    let cheap = post_r(&mut c, 1, 5);
    let dear = post_r(&mut c, 2, 9);
    let deal = post_j(&mut c, 1).deal.unwrap();
    assert_eq!(deal_of(&c, &deal).unwrap().resource_offer, cheap);
    signed(&mut c, deal, T0 + 1_000);
    let provider = resource(1, 5).0.offer.provider;
    assert_eq!(c.strikes(&provider), None);

    c.chain_cancelled(deal, T0 + 2_000).unwrap();
    let ended = deal_of(&c, &deal).unwrap();
    assert_eq!((ended.state, ended.fault), (DealStatus::Expired, Some(ProviderFault::Cancelled)));
    let strikes = c.strikes(&provider).expect("struck");
    assert_eq!((strikes.count, strikes.until), (1, T0 / 1000 + 2 + 60), "paused for the sign timeout");
    // Its job went to the other provider at once.
    let j = job_record(&c, 1);
    assert_eq!(j.excluded, vec![cheap]);
    assert_eq!(deal_of(&c, &j.deal.expect("matched again")).unwrap().resource_offer, dear);
    // Its slot is free, but the provider is paused: a new job waits.
    assert!(post_j(&mut c, 2).deal.is_none(), "paused");
    // Seen again (the follower reads each log's deal): no second strike.
    c.chain_cancelled(deal, T0 + 3_000).unwrap();
    assert_eq!(c.strikes(&provider).unwrap().count, 1);
}

#[test]
fn a_proposal_its_provider_cancels_on_chain_is_a_refusal_and_costs_nothing() {
    let mut c = core(Arc::new(MemoryStore::new()));
    let cheap = post_r(&mut c, 1, 5);
    post_r(&mut c, 2, 9);
    let deal = post_j(&mut c, 1).deal.unwrap();
    c.chain_cancelled(deal, T0 + 1_000).unwrap();
    assert_eq!(deal_of(&c, &deal).unwrap().state, DealStatus::Expired);
    assert_eq!(c.strikes(&resource(1, 5).0.offer.provider), None, "never signed here: not struck");
    let j = job_record(&c, 1);
    assert_eq!(j.excluded, vec![cheap]);
    assert!(j.deal.is_some(), "the job went to the other provider");
}

#[test]
fn a_failure_found_on_chain_strikes_once_and_closes_the_job_when_nobody_waits_for_it() {
    let mut c = core(Arc::new(MemoryStore::new()));
    post_r(&mut c, 1, 5);
    post_r(&mut c, 2, 9);
    let deal = post_j(&mut c, 1).deal.unwrap();
    let provider = resource(1, 5).0.offer.provider;
    // Only a signed deal can fail at its creation.
    assert!(matches!(c.provider_failed(deal, ProviderFault::EscrowShort, false, T0), Err(SolverError::Conflict(_))));
    assert_eq!(c.strikes(&provider), None);

    signed(&mut c, deal, T0);
    let ended = c.provider_failed(deal, ProviderFault::EscrowShort, false, T0 + 1_000).unwrap();
    assert_eq!((ended.state, ended.fault), (DealStatus::Expired, Some(ProviderFault::EscrowShort)));
    assert_eq!(c.strikes(&provider).unwrap().count, 1);
    assert_eq!(job_record(&c, 1).status, OfferStatus::Closed, "its job creator gave up on it");
    // Reported again: answered as it is, without another strike.
    let again = c.provider_failed(deal, ProviderFault::BadSignature, true, T0 + 2_000).unwrap();
    assert_eq!(again.fault, Some(ProviderFault::EscrowShort));
    assert_eq!(c.strikes(&provider).unwrap().count, 1);
}

#[test]
fn failures_and_lapses_add_up_to_longer_pauses() {
    let mut c = core(Arc::new(MemoryStore::new()));
    post_r(&mut c, 1, 5);
    let provider = resource(1, 5).0.offer.provider;
    // A lapse first.
    post_j(&mut c, 1).deal.unwrap();
    c.housekeeping(T0 + 60_000).unwrap();
    assert_eq!(c.strikes(&provider).unwrap().count, 1);
    // Once the pause is over, a signed deal that fails.
    c.housekeeping(T0 + 120_000).unwrap();
    let (s, id) = job(2);
    let deal = c.post_job_offer(s, id, T0 + 121_000).unwrap().deal.expect("matched once the pause is over");
    signed(&mut c, deal, T0 + 121_000);
    c.provider_failed(deal, ProviderFault::BadSignature, true, T0 + 122_000).unwrap();
    let strikes = c.strikes(&provider).unwrap();
    assert_eq!((strikes.count, strikes.until), (2, T0 / 1000 + 122 + 120), "the second strike doubles the pause");
}
