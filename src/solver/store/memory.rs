//! [`MemoryStore`]: the [`Store`] in ordinary maps, for unit tests and benches.

use super::{account_event_key, nonce_key, Batch, Op, Store, StoreError};
use crate::protocol::records::{DealRecord, Event, OfferRecord, ResultRecord};
use alloy::primitives::{Address, B256, U256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    offers: HashMap<B256, OfferRecord>,
    deals: HashMap<B256, DealRecord>,
    results: HashMap<B256, ResultRecord>,
    events: BTreeMap<u64, Arc<Event>>,
    by_account: BTreeMap<[u8; 28], ()>,
    meta: HashMap<String, Vec<u8>>,
}

/// A [`Store`] that forgets everything when dropped.
///
/// Used nonces have a lock of their own, as they have their own column family in RocksDB,
/// whose reads never wait for a write: the core checks a nonce per request while the
/// writer applies batches.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    nonces: Mutex<HashMap<[u8; 52], u64>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn nonces(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 52], u64>> {
        self.nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let (used, ops): (Vec<Op>, Vec<Op>) = batch.ops.into_iter().partition(|op| matches!(op, Op::UseNonce { .. }));
        {
            let mut nonces = self.nonces();
            for op in used {
                if let Op::UseNonce { account, nonce, expiry } = op {
                    nonces.insert(nonce_key(account, nonce), expiry);
                }
            }
        }
        let mut s = self.lock();
        for op in ops {
            match op {
                Op::PutOffer(o) => {
                    s.offers.insert(o.id(), o);
                }
                Op::PutDeal(d) => {
                    s.deals.insert(d.id, d);
                }
                Op::PutResult(r) => {
                    s.results.insert(r.deal, r);
                }
                Op::DeleteResult(deal) => {
                    s.results.remove(&deal);
                }
                Op::Event(e) => {
                    for a in &e.accounts {
                        s.by_account.insert(account_event_key(*a, e.seq), ());
                    }
                    s.events.insert(e.seq, e);
                }
                Op::UseNonce { .. } => unreachable!("applied above"),
                Op::PutMeta(k, v) => {
                    s.meta.insert(k, v);
                }
            }
        }
        Ok(())
    }

    fn offer(&self, id: &B256) -> Result<Option<OfferRecord>, StoreError> {
        Ok(self.lock().offers.get(id).cloned())
    }

    fn offers(&self) -> Result<Vec<OfferRecord>, StoreError> {
        let mut v: Vec<_> = self.lock().offers.values().cloned().collect();
        v.sort_by_key(|o| o.seq());
        Ok(v)
    }

    fn deal(&self, id: &B256) -> Result<Option<DealRecord>, StoreError> {
        Ok(self.lock().deals.get(id).cloned())
    }

    fn deals(&self) -> Result<Vec<DealRecord>, StoreError> {
        let mut v: Vec<_> = self.lock().deals.values().cloned().collect();
        v.sort_by_key(|d| d.seq);
        Ok(v)
    }

    fn result(&self, deal: &B256) -> Result<Option<ResultRecord>, StoreError> {
        Ok(self.lock().results.get(deal).cloned())
    }

    fn nonce_used(&self, account: Address, nonce: U256) -> Result<bool, StoreError> {
        Ok(self.nonces().contains_key(&nonce_key(account, nonce)))
    }

    fn prune_nonces(&self, now: u64) -> Result<usize, StoreError> {
        let mut nonces = self.nonces();
        let before = nonces.len();
        nonces.retain(|_, expiry| *expiry >= now);
        Ok(before - nonces.len())
    }

    fn events_for(&self, account: Address, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let s = self.lock();
        let from = account_event_key(account, after.saturating_add(1));
        let to = account_event_key(account, u64::MAX);
        Ok(s.by_account
            .range(from..=to)
            .take(limit)
            .filter_map(|(k, _)| {
                let seq = u64::from_be_bytes(k[20..].try_into().expect("8 bytes"));
                s.events.get(&seq).map(|e| Event::clone(e))
            })
            .collect())
    }

    fn last_event_seq(&self) -> Result<u64, StoreError> {
        Ok(self.lock().events.keys().next_back().copied().unwrap_or(0))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().meta.get(key).cloned())
    }
}
