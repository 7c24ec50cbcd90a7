//! The behaviour every [`Store`] backend must have. Each backend's tests call [`run`].

use super::{Batch, Op, Store};
use crate::chain::bindings::DcnDeals;
use crate::protocol::records::*;
use crate::protocol::{JobOffer, SignedJobOffer};
use crate::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use alloy::primitives::{Address, Bytes, B256, U256};

fn job(id: u8, seq: u64) -> OfferRecord {
    OfferRecord::Job(JobOfferRecord {
        id: B256::repeat_byte(id),
        seq,
        received_at: 1,
        status: OfferStatus::Open,
        deal: None,
        excluded: vec![],
        signed: SignedJobOffer {
            offer: JobOffer {
                jobCreator: Address::repeat_byte(0xc),
                solver: Address::repeat_byte(0x5),
                jobHash: B256::ZERO,
                maxPrice: U256::from(7),
                mediationFee: U256::ZERO,
                auditFee: U256::from(1),
                auditPpm: 1_000_000,
                mediators: vec![Address::repeat_byte(0xd)],
                resultTimeout: 1,
                judgeTimeout: 1,
                mediationTimeout: 1,
                expiry: 9,
                nonce: U256::from(seq),
            },
            spec: JobSpec {
                module: ModuleRef { name: "m".into(), version: "1".into(), hash: "h".into() },
                image: "i".into(),
                argv: vec![],
                env: Default::default(),
                resources: Resources::default(),
                network: NetworkPolicy::None,
                timeout_secs: 0,
                outputs: vec![],
                success_exit_codes: vec![],
                run_as_root: false,
            },
            signature: Bytes::from(vec![1; 65]),
        },
    })
}

fn deal(id: u8, seq: u64) -> DealRecord {
    DealRecord {
        id: B256::repeat_byte(id),
        seq,
        deal: DcnDeals::Deal {
            jobCreator: Address::repeat_byte(0xc),
            provider: Address::repeat_byte(0xa),
            solver: Address::repeat_byte(0x5),
            mediators: vec![Address::repeat_byte(0xd)],
            price: U256::from(3),
            collateral: U256::from(4),
            mediationFee: U256::from(1),
            auditFee: U256::from(1),
            auditPpm: 1_000_000,
            resultTimeout: 10,
            judgeTimeout: 11,
            mediationTimeout: 12,
            createDeadline: 13,
            jobHash: B256::repeat_byte(0xee),
            nonce: U256::from(seq),
        },
        job_offer: B256::repeat_byte(1),
        resource_offer: B256::repeat_byte(2),
        state: DealStatus::Proposed,
        provider_signature: None,
        created_at: 5,
        updated_at: 5,
        refusal: None,
        fault: None,
    }
}

fn event(seq: u64, accounts: Vec<Address>) -> Event {
    Event { seq, at: seq * 10, accounts, kind: EventKind::OfferCancelled { offer: B256::repeat_byte(seq as u8) } }
}

/// What [`fill`] wrote, for [`check_filled`].
pub struct Written {
    offers: Vec<OfferRecord>,
    deals: Vec<DealRecord>,
    result: ResultRecord,
}

/// Writes a little of everything in two batches.
pub fn fill(store: &dyn Store) -> Written {
    let a = Address::repeat_byte(0xa);
    let c = Address::repeat_byte(0xc);
    let offers = vec![job(2, 1), job(1, 2)];
    let deals = vec![deal(9, 1), deal(8, 2)];
    let result = ResultRecord { deal: deals[0].id, sha256: B256::repeat_byte(0x77), size: 42, uploaded_at: 3 };
    let mut b = Batch::default();
    for o in &offers {
        b.push(Op::PutOffer(o.clone()));
    }
    b.push(Op::UseNonce { account: c, nonce: U256::from(1), expiry: 100 });
    b.push(Op::Event(std::sync::Arc::new(event(1, vec![c]))));
    b.push(Op::Event(std::sync::Arc::new(event(2, vec![a, c]))));
    store.apply(b).unwrap();
    let mut b = Batch::default();
    for d in &deals {
        b.push(Op::PutDeal(d.clone()));
    }
    b.push(Op::PutResult(result.clone()));
    b.push(Op::Event(std::sync::Arc::new(event(3, vec![a]))));
    b.push(Op::PutMeta("block".into(), vec![1, 2]));
    store.apply(b).unwrap();
    Written { offers, deals, result }
}

/// Checks that everything [`fill`] wrote reads back.
pub fn check_filled(store: &dyn Store, w: &Written) {
    let a = Address::repeat_byte(0xa);
    let c = Address::repeat_byte(0xc);
    assert_eq!(store.offers().unwrap(), w.offers, "offers come back in arrival order");
    assert_eq!(store.offer(&w.offers[1].id()).unwrap().as_ref(), Some(&w.offers[1]));
    assert_eq!(store.deals().unwrap(), vec![w.deals[0].clone(), w.deals[1].clone()], "deals in match order");
    assert_eq!(store.deal(&w.deals[1].id).unwrap().as_ref(), Some(&w.deals[1]));
    assert_eq!(store.result(&w.deals[0].id).unwrap().as_ref(), Some(&w.result));
    assert_eq!(store.result(&w.deals[1].id).unwrap(), None);
    assert!(store.nonce_used(c, U256::from(1)).unwrap());
    assert!(!store.nonce_used(a, U256::from(1)).unwrap(), "nonces are per account");
    assert!(!store.nonce_used(c, U256::from(2)).unwrap());
    assert_eq!(store.last_event_seq().unwrap(), 3);
    let seqs = |acc, after, limit| -> Vec<u64> {
        store.events_for(acc, after, limit).unwrap().iter().map(|e| e.seq).collect()
    };
    assert_eq!(seqs(a, 0, 10), vec![2, 3]);
    assert_eq!(seqs(c, 0, 10), vec![1, 2]);
    assert_eq!(seqs(c, 1, 10), vec![2], "after is exclusive");
    assert_eq!(seqs(a, 0, 1), vec![2], "limit");
    assert_eq!(seqs(Address::repeat_byte(0xb), 0, 10), Vec::<u64>::new());
    assert_eq!(store.events_for(a, 2, 10).unwrap()[0], event(3, vec![a]));
    assert_eq!(store.meta("block").unwrap(), Some(vec![1, 2]));
    assert_eq!(store.meta("nothing").unwrap(), None);
}

/// The whole suite on an empty store.
pub fn run(store: &dyn Store) {
    assert_eq!(store.last_event_seq().unwrap(), 0);
    assert!(store.offers().unwrap().is_empty());
    let w = fill(store);
    check_filled(store, &w);

    // Replacing a record keeps one copy.
    let mut d = w.deals[0].clone();
    d.state = DealStatus::Signed;
    let mut b = Batch::default();
    b.push(Op::PutDeal(d.clone()));
    store.apply(b).unwrap();
    assert_eq!(store.deal(&d.id).unwrap(), Some(d));
    assert_eq!(store.deals().unwrap().len(), 2);

    // Pruning forgets only expired nonces.
    let c = Address::repeat_byte(0xc);
    let mut b = Batch::default();
    b.push(Op::UseNonce { account: c, nonce: U256::from(5), expiry: 500 });
    store.apply(b).unwrap();
    assert_eq!(store.prune_nonces(200).unwrap(), 1);
    assert!(!store.nonce_used(c, U256::from(1)).unwrap());
    assert!(store.nonce_used(c, U256::from(5)).unwrap());

    // A result is forgotten when its retention is over.
    let mut b = Batch::default();
    b.push(Op::DeleteResult(w.deals[0].id));
    store.apply(b).unwrap();
    assert_eq!(store.result(&w.deals[0].id).unwrap(), None);
}

#[test]
fn memory_store_passes_the_conformance_suite() {
    run(&super::MemoryStore::new());
}
