//! One account's turn to send: every transaction a dcn account sends takes a turn here, so
//! that two tasks of one process, or two dcn processes of one account sharing a data
//! directory (a batch of `dcn run`, a service and a `dcn run`), never pick the same nonce,
//! and escrow top-ups of concurrent jobs never race.
//!
//! A turn is an in-process mutex per (chain id, account) and, where the client knows its
//! data directory, an advisory lock (`flock`) on `<data_dir>/accounts/<chain id>-<account>.<kind>.lock`.
//! Two kinds of turn, always taken in this order:
//! - [`Kind::Escrow`]: reading the free escrow, topping it up and the transaction that locks
//!   it (`createDeal`, `challenge`), held until that transaction is mined;
//! - [`Kind::Nonce`]: reading the pending nonce and broadcasting one transaction, held until
//!   the node accepted it (not until it is mined).
//!
//! Processes with different data directories share no lock: they fall back on re-reading the
//! pending nonce and resending when the node says the nonce was taken ([`is_nonce_error`]).

use alloy::primitives::Address;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::OwnedMutexGuard;

/// Which turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Escrow top-up and the transaction that locks the escrow.
    Escrow,
    /// Picking a nonce and broadcasting.
    Nonce,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Escrow => "escrow",
            Self::Nonce => "nonce",
        }
    }
}

/// Could not take a turn: the lock file cannot be made or locked.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot lock {path} (one transaction at a time per account on this machine): {source}. Check that the data \
     directory is writable (--data-dir, DCN_DATA_DIR)"
)]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

type Local = Arc<tokio::sync::Mutex<()>>;
/// The in-process turns, by (chain id, account, kind).
type Locals = HashMap<(u64, Address, Kind), Local>;

static LOCALS: LazyLock<Mutex<Locals>> = LazyLock::new(Default::default);

/// The turns of one account on one chain.
#[derive(Debug, Clone)]
pub struct TxQueue {
    chain_id: u64,
    account: Address,
    dir: Option<PathBuf>,
}

/// A turn held; released when dropped.
#[derive(Debug)]
pub struct Turn {
    // Dropped after `file`: the lock file is unlocked (closed) before another task of this
    // process may try it, which is harmless either way.
    _file: Option<std::fs::File>,
    _local: OwnedMutexGuard<()>,
}

impl TxQueue {
    /// The turns of `account` on chain `chain_id` within this process only.
    pub fn in_process(chain_id: u64, account: Address) -> Self {
        Self { chain_id, account, dir: None }
    }

    /// Also shared with every dcn process that uses `data_dir`.
    pub fn shared_in(mut self, data_dir: &Path) -> Self {
        self.dir = Some(data_dir.join("accounts"));
        self
    }

    /// The lock file of `kind`, if shared.
    pub fn lock_path(&self, kind: Kind) -> Option<PathBuf> {
        let name = format!("{}-{}.{}.lock", self.chain_id, self.account.to_string().to_lowercase(), kind.name());
        self.dir.as_ref().map(|d| d.join(name))
    }

    /// Waits for this account's turn of `kind`.
    pub async fn turn(&self, kind: Kind) -> Result<Turn, LockError> {
        let local = {
            let mut locals = LOCALS.lock().unwrap_or_else(|p| p.into_inner());
            locals.entry((self.chain_id, self.account, kind)).or_default().clone()
        };
        let local = local.lock_owned().await;
        let file = match self.lock_path(kind) {
            None => None,
            Some(path) => {
                let at = path.clone();
                let locked = tokio::task::spawn_blocking(move || {
                    lock_file(&at).map_err(|source| LockError { path: at, source })
                })
                .await
                .map_err(|e| LockError { path, source: e.into() })??;
                Some(locked)
            }
        };
        Ok(Turn { _file: file, _local: local })
    }
}

/// Opens (creating) and locks `path` exclusively, waiting for other holders.
fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    file.lock()?;
    Ok(file)
}

/// Whether a node refused a transaction because its nonce was taken meanwhile (by another
/// process of the account, or a transaction sent elsewhere): read the nonce again and resend.
pub fn is_nonce_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["nonce too low", "nonce has already been used", "replacement transaction underpriced", "already known"]
        .iter()
        .any(|s| m.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn turns_of_one_account_never_overlap_and_other_accounts_do_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let me = Address::repeat_byte(1);
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for i in 0..8 {
            // Half share the data directory; all share the process.
            let q = TxQueue::in_process(7, me);
            let q = if i % 2 == 0 { q.shared_in(dir.path()) } else { q };
            let (inside, most) = (inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _t = q.turn(Kind::Nonce).await.unwrap();
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // While one account holds its turn, another account's and another kind's come at once.
        let q = TxQueue::in_process(7, me).shared_in(dir.path());
        let _held = q.turn(Kind::Nonce).await.unwrap();
        let other = TxQueue::in_process(7, Address::repeat_byte(2)).shared_in(dir.path());
        tokio::time::timeout(Duration::from_secs(5), other.turn(Kind::Nonce)).await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(5), q.turn(Kind::Escrow)).await.unwrap().unwrap();
        assert!(q.lock_path(Kind::Nonce).unwrap().exists());
    }

    #[test]
    fn the_lock_file_excludes_another_open_of_it() {
        // flock locks belong to the open file: a second open (another process) must wait.
        let dir = tempfile::tempdir().unwrap();
        let q = TxQueue::in_process(1, Address::ZERO).shared_in(dir.path());
        let path = q.lock_path(Kind::Escrow).unwrap();
        let held = lock_file(&path).unwrap();
        let other = std::fs::File::open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
    }

    #[test]
    fn nonce_races_are_told_from_other_refusals() {
        for m in [
            "server returned an error response: error code -32003: nonce too low",
            "Nonce too low. Expected nonce to be 5 but got 4",
            "replacement transaction underpriced",
            "already known",
        ] {
            assert!(is_nonce_error(m), "{m}");
        }
        assert!(!is_nonce_error("execution reverted: DealExpired(12)"));
        assert!(!is_nonce_error("insufficient funds for gas * price + value"));
    }

    #[tokio::test]
    async fn an_unwritable_data_directory_says_so() {
        let q = TxQueue::in_process(1, Address::ZERO).shared_in(Path::new("/proc/dcn-cannot-write"));
        let err = q.turn(Kind::Nonce).await.unwrap_err().to_string();
        assert!(err.contains("cannot lock /proc/dcn-cannot-write/accounts/") && err.contains("writable"), "{err}");
    }
}
