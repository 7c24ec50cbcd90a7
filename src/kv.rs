//! [`KvStore`]: the small typed store of the services that act on deals (provider,
//! mediator, job board): one JSON record per deal or request in named tables, plus a few
//! named cursors (a block number, an event sequence number).
//!
//! The store sits on a [`KvBackend`]: [`RocksKv`] (RocksDB; writes go through the
//! write-ahead log, so a `kill -9` loses nothing that was written) or [`MemoryKv`] (maps,
//! for unit tests of the roles). Both pass the same tests below.

use rocksdb::{IteratorMode, Options, DB};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const META: &str = "meta";

/// A store failure: the disk or database, or a record that no longer decodes.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The database refused an operation.
    #[error("database error in {path}: {message}")]
    Db {
        /// The database directory.
        path: String,
        /// What the database said.
        message: String,
    },
    /// A stored value does not decode as the record it should be (corruption, or a store
    /// written by an incompatible version).
    #[error("stored {what} does not decode: {source}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// Keys and values, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Bytes in, bytes out: what a [`KvStore`] needs of a database.
pub trait KvBackend: Send + Sync {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Writes `value` at `key`.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError>;
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Entries, KvError>;
}

/// A [`KvBackend`] in a RocksDB directory.
pub struct RocksKv {
    db: DB,
    path: PathBuf,
}

impl RocksKv {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<Self, KvError> {
        let db_err = |message: String| KvError::Db { path: path.display().to_string(), message };
        std::fs::create_dir_all(path).map_err(|e| db_err(format!("cannot create the directory: {e}")))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path)
            .map_err(|e| db_err(format!("{e} (is another process using this data directory?)")))?;
        Ok(Self { db, path: path.to_path_buf() })
    }

    fn err(&self, e: rocksdb::Error) -> KvError {
        KvError::Db { path: self.path.display().to_string(), message: e.to_string() }
    }
}

impl KvBackend for RocksKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db.get(key).map_err(|e| self.err(e))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.db.put(key, value).map_err(|e| self.err(e))
    }

    fn scan(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        let mut out = Vec::new();
        for item in self.db.iterator(IteratorMode::From(prefix, rocksdb::Direction::Forward)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// A [`KvBackend`] in a map, forgotten when dropped.
#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryKv {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KvBackend for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.lock().get(key).cloned())
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.lock().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Entries, KvError> {
        let map = self.lock();
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// Typed records in tables and named cursors, on a [`KvBackend`]. Cheap to clone.
#[derive(Clone)]
pub struct KvStore {
    backend: Arc<dyn KvBackend>,
    name: String,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore").field("at", &self.name).finish()
    }
}

// table ‖ 0 ‖ id: tables never contain a NUL byte, so one table's keys are contiguous.
fn key(table: &str, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(table.len() + 1 + id.len());
    k.extend_from_slice(table.as_bytes());
    k.push(0);
    k.extend_from_slice(id);
    k
}

fn decode<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T, KvError> {
    serde_json::from_slice(bytes).map_err(|source| KvError::Corrupt { what: format!("{table} record"), source })
}

impl KvStore {
    /// Opens (or creates) a RocksDB store in `path`.
    pub fn open(path: &Path) -> Result<Self, KvError> {
        Ok(Self { backend: Arc::new(RocksKv::open(path)?), name: path.display().to_string() })
    }

    /// An empty store in memory.
    pub fn memory() -> Self {
        Self::with_backend(Arc::new(MemoryKv::default()))
    }

    /// A store on `backend` (tests inject failing ones).
    pub fn with_backend(backend: Arc<dyn KvBackend>) -> Self {
        Self { backend, name: "custom".into() }
    }

    /// Writes record `id` of `table`.
    pub fn put<T: Serialize>(&self, table: &str, id: &[u8], value: &T) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(value).expect("records always serialize");
        self.backend.put(&key(table, id), &bytes)
    }

    /// Reads record `id` of `table`.
    pub fn get<T: DeserializeOwned>(&self, table: &str, id: &[u8]) -> Result<Option<T>, KvError> {
        self.backend.get(&key(table, id))?.map(|bytes| decode(table, &bytes)).transpose()
    }

    /// Every record of `table`, in key order.
    pub fn all<T: DeserializeOwned>(&self, table: &str) -> Result<Vec<T>, KvError> {
        self.backend.scan(&key(table, &[]))?.iter().map(|(_, v)| decode(table, v)).collect()
    }

    /// A named cursor (block number, event sequence), if set.
    pub fn cursor(&self, name: &str) -> Result<Option<u64>, KvError> {
        Ok(self
            .backend
            .get(&key(META, name.as_bytes()))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// Sets a named cursor.
    pub fn set_cursor(&self, name: &str, value: u64) -> Result<(), KvError> {
        self.backend.put(&key(META, name.as_bytes()), &value.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records_and_cursors(kv: &KvStore) {
        kv.put("jobs", b"b", &2u32).unwrap();
        kv.put("jobs", b"a", &1u32).unwrap();
        kv.put("jobsx", b"a", &3u32).unwrap();
        kv.set_cursor("block", 42).unwrap();
        assert_eq!(kv.all::<u32>("jobs").unwrap(), vec![1, 2], "tables and cursors stay apart");
        assert_eq!(kv.all::<u32>("jobsx").unwrap(), vec![3]);
        assert_eq!(kv.get::<u32>("jobs", b"a").unwrap(), Some(1));
        assert_eq!(kv.get::<u32>("jobs", b"c").unwrap(), None);
        assert_eq!(kv.cursor("block").unwrap(), Some(42));
        assert_eq!(kv.cursor("other").unwrap(), None);
        assert!(kv.get::<String>("jobs", b"a").is_err(), "a record of another type is reported corrupt");
    }

    #[test]
    fn memory_backend_keeps_tables_apart() {
        records_and_cursors(&KvStore::memory());
    }

    #[test]
    fn rocks_backend_keeps_tables_apart_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        records_and_cursors(&KvStore::open(dir.path()).unwrap());
        let kv = KvStore::open(dir.path()).unwrap();
        assert_eq!(kv.all::<u32>("jobs").unwrap(), vec![1, 2]);
        assert_eq!(kv.cursor("block").unwrap(), Some(42));
    }
}
