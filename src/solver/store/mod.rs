//! The solver's durable state: offers, deals, result index, the event log and used nonces,
//! behind the [`Store`] trait. [`RocksStore`] keeps them in RocksDB column families;
//! [`MemoryStore`] keeps them in maps for unit tests and benches. Both pass the same
//! conformance suite (`conformance.rs`).
//!
//! Writes that belong together (an offer, its nonce and its event; a match's deal, offer
//! updates and events) go in one [`Batch`], applied atomically.

mod memory;
mod rocks;

#[cfg(test)]
pub(crate) mod conformance;

pub use memory::MemoryStore;
pub use rocks::RocksStore;

use crate::protocol::records::{DealRecord, Event, OfferRecord, ResultRecord};
use alloy::primitives::{Address, B256, U256};
use std::sync::Arc;

/// A store failure: the disk, the database or a record that no longer decodes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("database error in {path}: {message}")]
    Db {
        /// The database directory.
        path: String,
        /// RocksDB's message.
        message: String,
    },
    /// A stored value does not decode as the record it should be (corruption, or a store
    /// written by an incompatible version).
    #[error("stored {what} does not decode: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A write failed: this one, or the one before it that it builds on.
    #[error("{0}")]
    Failed(std::sync::Arc<StoreError>),
    /// A write queued after one that failed: it was not attempted.
    #[error("an earlier write to the store failed, so this one was not made: try again")]
    Earlier,
    /// The solver is shutting down and its store takes no more writes.
    #[error("the solver's store is closed: it is shutting down")]
    Closed,
}

/// One write in a [`Batch`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Insert or replace an offer.
    PutOffer(OfferRecord),
    /// Insert or replace a deal.
    PutDeal(DealRecord),
    /// Record an uploaded result.
    PutResult(ResultRecord),
    /// Forget the result of a deal (its retention is over).
    DeleteResult(B256),
    /// Append an event (its `seq` must be the next one). Shared with the writer, which
    /// publishes it once it is written.
    Event(Arc<Event>),
    /// Mark `nonce` used by `account` until `expiry` (unix seconds).
    UseNonce {
        /// The signing account.
        account: Address,
        /// The nonce.
        nonce: U256,
        /// After this it can be forgotten: the signed object is refused as expired anyway.
        expiry: u64,
    },
    /// Set a metadata value (e.g. the last chain block read).
    PutMeta(String, Vec<u8>),
}

/// Writes applied together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The writes, in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// Adds a write.
    pub fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The solver's durable state, in domain verbs.
pub trait Store: Send + Sync + 'static {
    /// Applies every write of `batch` atomically.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
    /// One offer.
    fn offer(&self, id: &B256) -> Result<Option<OfferRecord>, StoreError>;
    /// Every offer, in arrival order.
    fn offers(&self) -> Result<Vec<OfferRecord>, StoreError>;
    /// One deal.
    fn deal(&self, id: &B256) -> Result<Option<DealRecord>, StoreError>;
    /// Every deal, in match order.
    fn deals(&self) -> Result<Vec<DealRecord>, StoreError>;
    /// The uploaded result of a deal.
    fn result(&self, deal: &B256) -> Result<Option<ResultRecord>, StoreError>;
    /// Whether `account` already used `nonce` (and it is not yet forgotten).
    fn nonce_used(&self, account: Address, nonce: U256) -> Result<bool, StoreError>;
    /// Forgets nonces whose expiry is before `now`; returns how many.
    fn prune_nonces(&self, now: u64) -> Result<usize, StoreError>;
    /// Up to `limit` events concerning `account` with a sequence number above `after`, in order.
    fn events_for(&self, account: Address, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// The sequence number of the last event (0 when there is none).
    fn last_event_seq(&self) -> Result<u64, StoreError>;
    /// A metadata value.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

/// Key of a used nonce: account ‖ nonce.
fn nonce_key(account: Address, nonce: U256) -> [u8; 52] {
    let mut k = [0u8; 52];
    k[..20].copy_from_slice(account.as_slice());
    k[20..].copy_from_slice(&nonce.to_be_bytes::<32>());
    k
}

/// Key of an event in an account's index: account ‖ seq.
fn account_event_key(account: Address, seq: u64) -> [u8; 28] {
    let mut k = [0u8; 28];
    k[..20].copy_from_slice(account.as_slice());
    k[20..].copy_from_slice(&seq.to_be_bytes());
    k
}
