//! [`RocksStore`]: the [`Store`] in RocksDB, one column family per kind of record.
//!
//! Writes go through the write-ahead log without fsync: a killed process (even `kill -9`)
//! loses nothing, because the log is in the kernel's page cache; a machine that loses
//! power may lose the last writes.

use super::{account_event_key, decode, encode, nonce_key, Batch, Op, Store, StoreError};
use crate::protocol::records::{DealRecord, Event, OfferRecord, ResultRecord};
use alloy::primitives::{Address, B256, U256};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};
use std::path::{Path, PathBuf};

const OFFERS: &str = "offers";
const DEALS: &str = "deals";
const RESULTS: &str = "results";
const EVENTS: &str = "events";
const EVENTS_BY_ACCOUNT: &str = "events_by_account";
const NONCES: &str = "nonces";
const META: &str = "meta";
const FAMILIES: [&str; 7] = [OFFERS, DEALS, RESULTS, EVENTS, EVENTS_BY_ACCOUNT, NONCES, META];

/// A [`Store`] in a RocksDB directory.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("path", &self.path).finish()
    }
}

impl RocksStore {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        const TOTAL_MEMTABLE_BYTES: usize = 32 << 20;
        const MEMTABLE_BYTES: usize = 8 << 20;
        let db_err = |e: rocksdb::Error| StoreError::Db { path: path.display().to_string(), message: e.to_string() };
        std::fs::create_dir_all(path).map_err(|e| StoreError::Db {
            path: path.display().to_string(),
            message: format!("cannot create the directory: {e}"),
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Memtables of all families together stay under 32 MiB: by default each of the
        // seven could hold 64 MiB before a flush, most of a flood's memory (THREATS V3).
        opts.set_db_write_buffer_size(TOTAL_MEMTABLE_BYTES);
        let families = FAMILIES.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf.set_write_buffer_size(MEMTABLE_BYTES);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, families).map_err(db_err)?;
        Ok(Self { db, path: path.to_path_buf() })
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("every column family is created at open")
    }

    fn err(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Db { path: self.path.display().to_string(), message: e.to_string() }
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        what: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.db.get_cf(self.cf(cf), key).map_err(|e| self.err(e))? {
            Some(bytes) => Ok(Some(decode(what, &bytes)?)),
            None => Ok(None),
        }
    }

    fn all<T: serde::de::DeserializeOwned>(&self, cf: &str, what: &'static str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
            let (_, value) = item.map_err(|e| self.err(e))?;
            out.push(decode(what, &value)?);
        }
        Ok(out)
    }
}

impl Store for RocksStore {
    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for op in batch.ops {
            match op {
                Op::PutOffer(o) => wb.put_cf(self.cf(OFFERS), o.id(), encode(&o)),
                Op::PutDeal(d) => wb.put_cf(self.cf(DEALS), d.id, encode(&d)),
                Op::PutResult(r) => wb.put_cf(self.cf(RESULTS), r.deal, encode(&r)),
                Op::DeleteResult(deal) => wb.delete_cf(self.cf(RESULTS), deal),
                Op::Event(e) => {
                    for a in &e.accounts {
                        wb.put_cf(self.cf(EVENTS_BY_ACCOUNT), account_event_key(*a, e.seq), []);
                    }
                    wb.put_cf(self.cf(EVENTS), e.seq.to_be_bytes(), encode(&e));
                }
                Op::UseNonce { account, nonce, expiry } => {
                    wb.put_cf(self.cf(NONCES), nonce_key(account, nonce), expiry.to_be_bytes())
                }
                Op::PutMeta(k, v) => wb.put_cf(self.cf(META), k.as_bytes(), v),
            }
        }
        self.db.write(wb).map_err(|e| self.err(e))
    }

    fn offer(&self, id: &B256) -> Result<Option<OfferRecord>, StoreError> {
        self.get(OFFERS, "offer", id.as_slice())
    }

    fn offers(&self) -> Result<Vec<OfferRecord>, StoreError> {
        let mut v: Vec<OfferRecord> = self.all(OFFERS, "offer")?;
        v.sort_by_key(|o| o.seq());
        Ok(v)
    }

    fn deal(&self, id: &B256) -> Result<Option<DealRecord>, StoreError> {
        self.get(DEALS, "deal", id.as_slice())
    }

    fn deals(&self) -> Result<Vec<DealRecord>, StoreError> {
        let mut v: Vec<DealRecord> = self.all(DEALS, "deal")?;
        v.sort_by_key(|d| d.seq);
        Ok(v)
    }

    fn result(&self, deal: &B256) -> Result<Option<ResultRecord>, StoreError> {
        self.get(RESULTS, "result", deal.as_slice())
    }

    fn nonce_used(&self, account: Address, nonce: U256) -> Result<bool, StoreError> {
        Ok(self.db.get_cf(self.cf(NONCES), nonce_key(account, nonce)).map_err(|e| self.err(e))?.is_some())
    }

    fn prune_nonces(&self, now: u64) -> Result<usize, StoreError> {
        let mut wb = WriteBatch::default();
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(NONCES), IteratorMode::Start) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let expiry = value.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if expiry < now {
                wb.delete_cf(self.cf(NONCES), key);
                n += 1;
            }
        }
        self.db.write(wb).map_err(|e| self.err(e))?;
        Ok(n)
    }

    fn events_for(&self, account: Address, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let from = account_event_key(account, after.saturating_add(1));
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(EVENTS_BY_ACCOUNT), IteratorMode::From(&from, Direction::Forward)) {
            let (key, _) = item.map_err(|e| self.err(e))?;
            if out.len() >= limit || key.len() != 28 || key[..20] != account.as_slice()[..] {
                break;
            }
            let seq: [u8; 8] = key[20..].try_into().expect("8 bytes");
            if let Some(event) = self.get(EVENTS, "event", &seq)? {
                out.push(event);
            }
        }
        Ok(out)
    }

    fn last_event_seq(&self) -> Result<u64, StoreError> {
        match self.db.iterator_cf(self.cf(EVENTS), IteratorMode::End).next() {
            Some(item) => {
                let (key, _) = item.map_err(|e| self.err(e))?;
                Ok(key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0))
            }
            None => Ok(0),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(META), key.as_bytes()).map_err(|e| self.err(e))?.map(|v| v.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::run(&RocksStore::open(&dir.path().join("db")).unwrap());
    }

    #[test]
    fn rocks_store_keeps_everything_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let written = super::super::conformance::fill(&RocksStore::open(&path).unwrap());
        let reopened = RocksStore::open(&path).unwrap();
        super::super::conformance::check_filled(&reopened, &written);
    }
}
