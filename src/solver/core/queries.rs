//! The core's reads: offers and deals by id and filtered lists, the event sequence, and
//! the counts behind `/metrics`.

use super::{Core, StoreError};
use crate::protocol::records::*;
use crate::solver::store::Store;
use alloy::primitives::{Address, B256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Counts for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Open resource offers.
    pub open_resource_offers: usize,
    /// Job offers waiting for a match.
    pub open_job_offers: usize,
    /// Offers by kind and status.
    pub offers: BTreeMap<String, usize>,
    /// Deals by state.
    pub deals: BTreeMap<&'static str, usize>,
    /// Matches made since the store was created.
    pub matches_total: u64,
    /// Sequence number of the last event.
    pub last_event_seq: u64,
}

/// Filters of the offer list.
#[derive(Debug, Clone, Default)]
pub struct OfferQuery {
    /// `Some(true)` resource offers, `Some(false)` job offers.
    pub resource: Option<bool>,
    /// Only this owner's.
    pub owner: Option<Address>,
    /// Only in this status.
    pub status: Option<OfferStatus>,
    /// Only with a sequence number above this.
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

/// Filters of the deal list.
#[derive(Debug, Clone, Default)]
pub struct DealQuery {
    /// Only deals this account is a party of.
    pub party: Option<Address>,
    /// Only in this state.
    pub state: Option<DealStatus>,
    /// Only with a sequence number above this.
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

impl Core {
    /// One offer: from memory while it is not final, else from the store.
    pub fn offer(&self, id: &B256) -> Result<Option<OfferRecord>, StoreError> {
        match self.offers.get(id) {
            Some(o) => Ok(Some(o.clone())),
            None => match self.overlay.offer(id) {
                Some(o) => Ok(Some(o.clone())),
                None => self.store.offer(id),
            },
        }
    }

    /// Offers matching `q`, in arrival order. The filters read the list's index; only the
    /// offers returned are read, final ones from the store.
    pub fn offers(&self, q: &OfferQuery) -> Result<Vec<OfferRecord>, StoreError> {
        let ids: Vec<B256> = self
            .offer_order
            .range(q.after.saturating_add(1)..)
            .map(|(_, l)| l)
            .filter(|l| q.resource.is_none_or(|r| l.resource == r))
            .filter(|l| q.owner.is_none_or(|a| l.owner == a))
            .filter(|l| q.status.is_none_or(|s| l.status == s))
            .take(q.limit)
            .map(|l| l.id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.offer(&id)?);
        }
        Ok(out)
    }

    /// One deal: from memory while it is not final, else from the store.
    pub fn deal(&self, id: &B256) -> Result<Option<DealRecord>, StoreError> {
        match self.deals.get(id) {
            Some(d) => Ok(Some(d.clone())),
            None => match self.overlay.deal(id) {
                Some(d) => Ok(Some(d.clone())),
                None => self.store.deal(id),
            },
        }
    }

    /// Deals matching `q`, in match order. The filters read the list's index; only the
    /// deals returned are read, final ones from the store.
    pub fn deals(&self, q: &DealQuery) -> Result<Vec<DealRecord>, StoreError> {
        let ids: Vec<B256> = self
            .deal_order
            .range(q.after.saturating_add(1)..)
            .map(|(_, l)| l)
            .filter(|l| q.party.is_none_or(|a| l.parties.contains(&a)))
            .filter(|l| q.state.is_none_or(|s| l.state == s))
            .take(q.limit)
            .map(|l| l.id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.deal(&id)?);
        }
        Ok(out)
    }

    /// Sequence number of the last durable event (0 when there is none).
    pub fn last_event_seq(&self) -> u64 {
        self.writer.last_event()
    }

    /// Counts for metrics, from counters kept as records change: its cost does not grow
    /// with the records (THREATS V3).
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            open_resource_offers: self.matcher.len().0,
            open_job_offers: self.matcher.len().1,
            matches_total: self.deal_order.len() as u64,
            last_event_seq: self.last_event_seq(),
            ..Default::default()
        };
        for ((resource, status), n) in &self.offer_counts {
            if *n > 0 {
                let kind = if *resource { "resource" } else { "job" };
                s.offers.insert(format!("{kind}:{}", status.name()), *n);
            }
        }
        for st in DealStatus::ALL {
            s.deals.insert(st.name(), self.deal_counts.get(&st).copied().unwrap_or(0));
        }
        s
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
