//! What `dcn run` keeps of each deal it buys, so that `dcn jobs` can list them and resume
//! one whose `dcn run` was killed (THREATS S6): one JSON file per deal under
//! `<data-dir>/jobs/<chain id>/<account>/<deal>.json`, written atomically (temporary file,
//! then rename) before the deal goes on chain and again as it moves. One file per deal, not
//! a database, so that any number of `dcn run` of one account work side by side; a deal is
//! followed by one process at a time ([`Journal::follow`] takes a lock on its file).

use crate::chain::DealState;
use crate::protocol::records::{CreatedDeal, DealRecord};
use crate::types::JobSpec;
use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A deal `dcn run` bought, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The deal as matched and signed by its provider.
    pub deal: DealRecord,
    /// The job.
    pub spec: JobSpec,
    /// The `createDeal` transaction, once sent.
    pub create_tx: Option<B256>,
    /// A block from before `createDeal`: the deal's events are read from there.
    #[serde(default)]
    pub since_block: u64,
    /// Whether the user asked to challenge the result.
    pub challenge: bool,
    /// Where its results go.
    pub results_dir: PathBuf,
    /// When it was matched, unix seconds.
    pub placed_at: u64,
    /// How it ended, once it did.
    pub ended: Option<Ended>,
}

/// How a deal ended, as `dcn run` reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// The final state on chain (`None` when it was never created).
    pub state: Option<DealState>,
    /// The sentence the user was shown.
    pub summary: String,
}

impl Entry {
    /// The deal as created, for following it (`create_tx` zero when unknown: the process that
    /// sent it was killed before it could write it down).
    pub fn created(&self) -> CreatedDeal {
        CreatedDeal {
            deal: self.deal.clone(),
            spec: self.spec.clone(),
            create_tx: self.create_tx.unwrap_or_default(),
            created_block: self.since_block,
        }
    }
}

/// Failures of the journal: always this machine's (disk, permissions).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}. Check the data directory (--data-dir, DCN_DATA_DIR)")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a journal entry.
    #[error("{path} is not a dcn job record: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another process follows the deal.
    #[error("deal {0} is being followed by another dcn process of this account; wait for it or stop it first")]
    Busy(B256),
    /// No record of the deal.
    #[error("no deal {deal} in {dir}: `dcn jobs` lists the deals `dcn run` bought with this account on this network")]
    Unknown {
        /// The deal asked for.
        deal: B256,
        /// Where records are.
        dir: PathBuf,
    },
}

/// The deals of one account on one chain.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

/// A deal held by one process: released when dropped.
#[derive(Debug)]
pub struct Following {
    _lock: std::fs::File,
}

impl Journal {
    /// The journal of `account` on chain `chain_id` under `data_dir`.
    pub fn new(data_dir: &Path, chain_id: u64, account: Address) -> Self {
        Self { dir: data_dir.join("jobs").join(chain_id.to_string()).join(account.to_string().to_lowercase()) }
    }

    fn path(&self, deal: B256) -> PathBuf {
        self.dir.join(format!("{deal}.json"))
    }

    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JournalError {
        let path = path.to_path_buf();
        move |source| JournalError::Io { what, path, source }
    }

    /// Writes `entry` (atomically: a reader sees the old or the new record, never half).
    pub fn save(&self, entry: &Entry) -> Result<(), JournalError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io("creating", &self.dir))?;
        let path = self.path(entry.deal.id);
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(entry).expect("a journal entry always serializes");
        std::fs::write(&tmp, bytes).map_err(Self::io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::io("renaming into place", &path))
    }

    /// The record of `deal`.
    pub fn load(&self, deal: B256) -> Result<Entry, JournalError> {
        let path = self.path(deal);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JournalError::Unknown { deal, dir: self.dir.clone() })
            }
            Err(e) => return Err(Self::io("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt { path, reason: e.to_string() })
    }

    /// Every recorded deal, oldest first.
    pub fn all(&self) -> Result<Vec<Entry>, JournalError> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Self::io("listing", &self.dir)(e)),
        };
        let mut entries = vec![];
        for item in read {
            let path = item.map_err(Self::io("listing", &self.dir))?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(id) = id.parse::<B256>() else { continue };
            entries.push(self.load(id)?);
        }
        entries.sort_by_key(|e| (e.placed_at, e.deal.id));
        Ok(entries)
    }

    /// Takes `deal` for this process, or fails with [`JournalError::Busy`] while another
    /// follows it.
    pub fn follow(&self, deal: B256) -> Result<Following, JournalError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io("creating", &self.dir))?;
        let path = self.dir.join(format!("{deal}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Self::io("opening", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(Following { _lock: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Busy(deal)),
            Err(std::fs::TryLockError::Error(e)) => Err(Self::io("locking", &path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{created_deal, spec};

    fn entry(n: u8, placed_at: u64) -> Entry {
        Entry {
            deal: created_deal(n).deal,
            spec: spec("moo"),
            create_tx: None,
            since_block: 0,
            challenge: false,
            results_dir: "/r".into(),
            placed_at,
            ended: None,
        }
    }

    #[test]
    fn entries_are_kept_listed_in_order_and_followed_by_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path(), 1337, Address::repeat_byte(1));
        assert!(j.all().unwrap().is_empty());
        let (a, mut b) = (entry(1, 20), entry(2, 10));
        j.save(&a).unwrap();
        j.save(&b).unwrap();
        b.ended = Some(Ended { state: Some(DealState::Accepted), summary: "paid".into() });
        j.save(&b).unwrap();
        assert_eq!(j.all().unwrap(), vec![b.clone(), a.clone()]);
        assert_eq!(j.load(a.deal.id).unwrap(), a);
        assert!(matches!(j.load(B256::repeat_byte(9)), Err(JournalError::Unknown { .. })));
        // Another account's journal is another directory.
        assert!(Journal::new(dir.path(), 1337, Address::repeat_byte(2)).all().unwrap().is_empty());
        let held = j.follow(a.deal.id).unwrap();
        assert!(matches!(j.follow(a.deal.id), Err(JournalError::Busy(_))));
        drop(held);
        j.follow(a.deal.id).unwrap();
    }
}
