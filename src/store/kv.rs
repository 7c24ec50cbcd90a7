//! [`KvStore`]: a small typed RocksDB store of tables for the services that act on deals (provider,
//! mediator, job board). One record per deal or request, JSON-encoded, keyed by id, plus a
//! few named cursors. Writes go through the write-ahead log, so a `kill -9` loses nothing
//! that was written.

use super::StoreError;
use rocksdb::{IteratorMode, Options, DB};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

const META: &str = "meta";

/// Typed records and cursors in one RocksDB directory.
pub struct KvStore {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore").field("path", &self.path).finish()
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

impl KvStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Db {
            path: path.display().to_string(),
            message: format!("cannot create the directory: {e}"),
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path).map_err(|e| StoreError::Db {
            path: path.display().to_string(),
            message: format!("{e} (is another process using this data directory?)"),
        })?;
        Ok(Self { db, path: path.to_path_buf() })
    }

    fn err(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Db { path: self.path.display().to_string(), message: e.to_string() }
    }

    /// Writes record `id` of `table`.
    pub fn put<T: Serialize>(&self, table: &str, id: &[u8], value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("records always serialize");
        self.db.put(key(table, id), bytes).map_err(|e| self.err(e))
    }

    /// Reads record `id` of `table`.
    pub fn get<T: DeserializeOwned>(&self, table: &str, id: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get(key(table, id)).map_err(|e| self.err(e))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Corrupt { what: "record", source }),
            None => Ok(None),
        }
    }

    /// Every record of `table`, in key order.
    pub fn all<T: DeserializeOwned>(&self, table: &str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let prefix = key(table, &[]);
        let iter = self.db.iterator(IteratorMode::From(&prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt { what: "record", source })?);
        }
        Ok(out)
    }

    /// A named cursor (block number, event sequence), if set.
    pub fn cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .db
            .get(key(META, name.as_bytes()))
            .map_err(|e| self.err(e))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// Sets a named cursor.
    pub fn set_cursor(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.db.put(key(META, name.as_bytes()), value.to_be_bytes()).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_cursors_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = KvStore::open(dir.path()).unwrap();
            kv.put("jobs", b"b", &2u32).unwrap();
            kv.put("jobs", b"a", &1u32).unwrap();
            kv.put("jobsx", b"a", &3u32).unwrap();
            kv.set_cursor("block", 42).unwrap();
        }
        let kv = KvStore::open(dir.path()).unwrap();
        assert_eq!(kv.all::<u32>("jobs").unwrap(), vec![1, 2], "tables and cursors stay apart");
        assert_eq!(kv.all::<u32>("jobsx").unwrap(), vec![3]);
        assert_eq!(kv.get::<u32>("jobs", b"a").unwrap(), Some(1));
        assert_eq!(kv.get::<u32>("jobs", b"c").unwrap(), None);
        assert_eq!(kv.cursor("block").unwrap(), Some(42));
        assert_eq!(kv.cursor("other").unwrap(), None);
        assert!(kv.get::<String>("jobs", b"a").is_err(), "a record of another type is reported corrupt");
    }
}
