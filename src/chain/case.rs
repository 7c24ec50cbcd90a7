//! A deal's case rebuilt from its events. `DcnDeals` keeps only a commitment to what a
//! deal's life added to its terms (the result hash, the excluded mediators, the ruling and
//! the appeal mediators); calls pass it back, so a party reads it from the deal's events:
//! `ResultSubmitted`, `DealChallenged` and `DealAudited` carry the result hash,
//! `MediatorMissed` the excluded set, `DealMediated` the ruling mediator, and
//! `AppealDrawn` the whole case.
//!
//! [`Cases`] reads them from a party's starting block and keeps, per deal, the case and
//! the next block to read, so each later look reads only new blocks.

use super::api::empty_case;
use super::bindings::DcnDeals;
use super::ChainError;
use alloy::primitives::{Address, B256};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most blocks read per log request.
const RANGE: u64 = 2_000;
/// Deals whose case is kept; past it, the oldest half is forgotten (and read again if
/// needed).
const KEPT: usize = 4_096;

/// The events that change a case.
pub fn case_events() -> Vec<B256> {
    vec![
        DcnDeals::ResultSubmitted::SIGNATURE_HASH,
        DcnDeals::DealChallenged::SIGNATURE_HASH,
        DcnDeals::DealAudited::SIGNATURE_HASH,
        DcnDeals::MediatorMissed::SIGNATURE_HASH,
        DcnDeals::DealMediated::SIGNATURE_HASH,
        DcnDeals::AppealDrawn::SIGNATURE_HASH,
    ]
}

/// Applies one of the deal's events to its case; other events change nothing.
pub fn apply(case: &mut DcnDeals::Case, log: &Log) {
    let Some(topic) = log.topics().first() else { return };
    match *topic {
        DcnDeals::ResultSubmitted::SIGNATURE_HASH => {
            if let Ok(e) = log.log_decode::<DcnDeals::ResultSubmitted>() {
                case.resultHash = e.inner.data.resultHash;
            }
        }
        DcnDeals::DealChallenged::SIGNATURE_HASH => {
            if let Ok(e) = log.log_decode::<DcnDeals::DealChallenged>() {
                case.resultHash = e.inner.data.resultHash;
            }
        }
        DcnDeals::DealAudited::SIGNATURE_HASH => {
            if let Ok(e) = log.log_decode::<DcnDeals::DealAudited>() {
                case.resultHash = e.inner.data.resultHash;
            }
        }
        DcnDeals::MediatorMissed::SIGNATURE_HASH => {
            if let Ok(e) = log.log_decode::<DcnDeals::MediatorMissed>() {
                case.excluded = e.inner.data.excluded;
            }
        }
        DcnDeals::DealMediated::SIGNATURE_HASH => {
            if let Ok(e) = log.log_decode::<DcnDeals::DealMediated>() {
                case.ruledBy = e.inner.data.mediator;
            }
        }
        DcnDeals::AppealDrawn::SIGNATURE_HASH => {
            if let Ok(e) = log.log_decode::<DcnDeals::AppealDrawn>() {
                *case = e.inner.data.c;
            }
        }
        _ => {}
    }
}

/// What a reader of logs must give [`Cases`].
#[async_trait::async_trait]
pub trait Logs: Send + Sync {
    /// The latest block number.
    async fn latest(&self) -> Result<u64, ChainError>;
    /// The logs matching `filter` in blocks `from..=to`, in chain order.
    async fn read(&self, filter: &Filter, from: u64, to: u64) -> Result<Vec<Log>, ChainError>;
}

/// Deals' cases, read incrementally from their events.
#[derive(Debug, Default)]
pub struct Cases {
    /// Per deal: the next block to read and the case so far.
    known: Mutex<HashMap<B256, (u64, DcnDeals::Case)>>,
}

impl Cases {
    /// The case of deal `id` of `contract`, from its events since block `since`.
    pub async fn of(
        &self,
        logs: &dyn Logs,
        contract: Address,
        id: B256,
        since: u64,
    ) -> Result<DcnDeals::Case, ChainError> {
        let (mut next, mut case) = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .filter(|(next, _)| *next >= since)
            .unwrap_or((since, empty_case()));
        let latest = logs.latest().await?;
        let filter = Filter::new().address(contract).event_signature(case_events()).topic1(id);
        while next <= latest {
            let to = latest.min(next + RANGE - 1);
            for log in logs.read(&filter, next, to).await? {
                apply(&mut case, &log);
            }
            next = to + 1;
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KEPT {
            let mut by_age: Vec<(u64, B256)> = known.iter().map(|(id, (n, _))| (*n, *id)).collect();
            by_age.sort();
            for (_, old) in by_age.into_iter().take(KEPT / 2) {
                known.remove(&old);
            }
        }
        known.insert(id, (next, case.clone()));
        Ok(case)
    }

    /// Forgets deal `id` (settled: nothing will change its case).
    pub fn forget(&self, id: &B256) {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::LogData;
    use alloy::sol_types::SolEvent;

    fn log_of<E: SolEvent>(e: &E, id: B256) -> Log {
        let mut data: LogData = e.encode_log_data();
        let mut topics = data.topics().to_vec();
        topics[1] = id;
        data = LogData::new_unchecked(topics, data.data);
        Log { inner: alloy::primitives::Log { address: Address::ZERO, data }, ..Default::default() }
    }

    #[test]
    fn a_case_is_rebuilt_event_by_event() {
        let id = B256::repeat_byte(1);
        let mut case = empty_case();
        let r = B256::repeat_byte(0xaa);
        apply(&mut case, &log_of(&DcnDeals::ResultSubmitted { dealId: id, resultHash: r, judgeDeadline: 9 }, id));
        assert_eq!(case.resultHash, r);
        let m = Address::repeat_byte(7);
        apply(&mut case, &log_of(&DcnDeals::MediatorMissed { dealId: id, mediator: m, excluded: 0b101 }, id));
        assert_eq!(case.excluded, 0b101);
        let ruling = DcnDeals::DealMediated { dealId: id, mediator: m, providerHonest: true, appealDeadline: 1 };
        apply(&mut case, &log_of(&ruling, id));
        assert_eq!(case.ruledBy, m);
        let whole =
            DcnDeals::Case { resultHash: r, excluded: 0b101, ruledBy: m, appealMediator: Address::repeat_byte(9) };
        let drawn =
            DcnDeals::AppealDrawn { dealId: id, mediator: Address::repeat_byte(9), deadline: 3, c: whole.clone() };
        apply(&mut case, &log_of(&drawn, id));
        assert_eq!(case, whole);
        // Events that change no case leave it be.
        apply(&mut case, &log_of(&DcnDeals::ResultAccepted { dealId: id }, id));
        assert_eq!(case, whole);
    }
}
