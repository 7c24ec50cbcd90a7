//! The one way to follow contract logs: a filter, a stored cursor (the next block to read)
//! and a backoff. The solver follows `DcnDeals`, the mediator its challenges and the job
//! board its requests, each through a [`Follower`].
//!
//! [`Follower::next`] waits for the next range of new blocks (at most [`MAX_RANGE`]),
//! returning its logs; the caller handles them and then [`Follower::commit`]s, so a
//! process killed in between reads the range again (handlers are idempotent).

use super::backoff::Backoff;
use crate::chain::{ChainError, Heads, LogSource};
use crate::kv::{KvError, KvStore};
use alloy::rpc::types::{Filter, Log};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most blocks read per request.
pub const MAX_RANGE: u64 = 2_000;

/// Where a stored cursor lives.
pub trait Cursor: Send + Sync {
    /// The next block to read, if one was stored.
    fn load(&self) -> Result<Option<u64>, CursorError>;
    /// Stores the next block to read.
    fn save(&self, next: u64) -> Result<(), CursorError>;
}

/// The cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the log cursor `{name}` cannot be read or stored: {reason}")]
pub struct CursorError {
    /// The cursor.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// A cursor in a [`KvStore`], by name.
pub struct KvCursor {
    kv: KvStore,
    name: &'static str,
}

impl KvCursor {
    /// The cursor `name` in `kv`.
    pub fn new(kv: KvStore, name: &'static str) -> Self {
        Self { kv, name }
    }

    fn err(&self, e: KvError) -> CursorError {
        CursorError { name: self.name.into(), reason: e.to_string() }
    }
}

impl Cursor for KvCursor {
    fn load(&self) -> Result<Option<u64>, CursorError> {
        self.kv.cursor(self.name).map_err(|e| self.err(e))
    }

    fn save(&self, next: u64) -> Result<(), CursorError> {
        self.kv.set_cursor(self.name, next).map_err(|e| self.err(e))
    }
}

/// Where to begin when no cursor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At the current head: only what happens from now on.
    Head,
    /// This many blocks before the head, so a service started just after an event still
    /// sees it.
    BeforeHead(u64),
}

/// A range of blocks read.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The matching logs, in chain order.
    pub logs: Vec<Log>,
    /// The first block not read yet.
    pub next: u64,
}

/// Follows the logs matching a filter from a stored cursor.
pub struct Follower {
    source: Arc<dyn LogSource>,
    filter: Filter,
    cursor: Box<dyn Cursor>,
    start: Start,
    next: Option<u64>,
    poll: Duration,
    /// New blocks: a follower reads as soon as one comes, `poll` being the longest wait.
    heads: Heads,
    backoff: Backoff,
    name: &'static str,
}

impl Follower {
    /// A follower named `name` (for logs) of the logs matching `filter`, from the stored
    /// cursor or else `start` (resolved at the first read), checking for new blocks every
    /// `poll`. Fails only if the stored cursor cannot be read.
    pub fn new(
        name: &'static str,
        source: Arc<dyn LogSource>,
        filter: Filter,
        cursor: Box<dyn Cursor>,
        start: Start,
        poll: Duration,
    ) -> Result<Self, CursorError> {
        let next = cursor.load()?;
        let backoff = Backoff::new(poll.max(Duration::from_millis(100)), Duration::from_secs(30));
        let heads = source.heads();
        Ok(Self { source, filter, cursor, start, next, poll, heads, backoff, name })
    }

    /// The first block not read yet (`None` before the first read without a cursor).
    pub fn position(&self) -> Option<u64> {
        self.next
    }

    /// The next range of new blocks with its logs; `None` once `token` is cancelled.
    /// Failures of the node are logged and retried with backoff.
    pub async fn next(&mut self, token: &CancellationToken) -> Option<Batch> {
        loop {
            // Blocks from here on end the wait below, even one mined during the read.
            self.heads.mark_seen();
            // A read of a node that does not answer is given up at the stop, not waited out.
            let read = tokio::select! {
                _ = token.cancelled() => return None,
                read = self.read() => read,
            };
            match read {
                Ok(Some(batch)) => {
                    self.backoff.reset();
                    return Some(batch);
                }
                Ok(None) => tokio::select! {
                    _ = token.cancelled() => return None,
                    _ = self.heads.wait(self.poll) => {}
                },
                Err(e) => {
                    // After a failure the backoff decides, not the next block.
                    let delay = self.backoff.next_delay();
                    tracing::warn!(follower = self.name, error = %e, retry_in_ms = delay.as_millis() as u64, "reading logs failed");
                    tokio::select! {
                        _ = token.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn read(&mut self) -> Result<Option<Batch>, ChainError> {
        let head = self.source.head().await?;
        let from = *self.next.get_or_insert(match self.start {
            Start::Head => head,
            Start::BeforeHead(n) => head.saturating_sub(n),
        });
        if head < from {
            return Ok(None);
        }
        let to = head.min(from + MAX_RANGE - 1);
        let logs = self.source.logs(&self.filter, from, to).await?;
        Ok(Some(Batch { logs, next: to + 1 }))
    }

    /// Records that `batch` was handled: the next read starts after it.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), CursorError> {
        self.cursor.save(batch.next)?;
        self.next = Some(batch.next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeChain;
    use alloy::primitives::{Address, LogData, B256};

    fn log(block: u64) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: Address::ZERO,
                data: LogData::new_unchecked(vec![B256::ZERO], Default::default()),
            },
            block_number: Some(block),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn reads_ranges_from_the_cursor_and_resumes_after_a_restart() {
        let chain = Arc::new(FakeChain::new(Address::repeat_byte(1)));
        chain.set_head(5);
        chain.push_log(log(3));
        let kv = KvStore::memory();
        let token = CancellationToken::new();
        let poll = Duration::from_millis(10);
        let start = Start::BeforeHead(4);
        let mut f =
            Follower::new("test", chain.clone(), Filter::new(), Box::new(KvCursor::new(kv.clone(), "b")), start, poll)
                .unwrap();
        assert_eq!(f.position(), None);
        let batch = f.next(&token).await.unwrap();
        assert_eq!((batch.logs.len(), batch.next), (1, 6));
        f.commit(&batch).unwrap();

        chain.set_head(7);
        chain.push_log(log(7));
        // A restart reads from the stored cursor, not from the start rule.
        let mut f =
            Follower::new("test", chain.clone(), Filter::new(), Box::new(KvCursor::new(kv, "b")), start, poll).unwrap();
        assert_eq!(f.position(), Some(6));
        let batch = f.next(&token).await.unwrap();
        assert_eq!(batch.logs.iter().map(|l| l.block_number.unwrap()).collect::<Vec<_>>(), vec![7]);
        assert_eq!(batch.next, 8);
    }

    #[tokio::test]
    async fn node_failures_are_retried_and_cancellation_ends_the_wait() {
        let chain = Arc::new(FakeChain::new(Address::repeat_byte(1)));
        chain.set_head(1);
        let token = CancellationToken::new();
        let mut f = Follower::new(
            "test",
            chain.clone(),
            Filter::new(),
            Box::new(KvCursor::new(KvStore::memory(), "b")),
            Start::Head,
            Duration::from_millis(5),
        )
        .unwrap();
        chain.fail_reads(2);
        let batch = f.next(&token).await.unwrap();
        assert_eq!(batch.next, 2, "read once the node answers again");
        f.commit(&batch).unwrap();
        token.cancel();
        assert!(f.next(&token).await.is_none(), "no new block and cancelled: returns");
    }

    /// A node that takes a request and never answers.
    struct SilentNode;

    #[async_trait::async_trait]
    impl LogSource for SilentNode {
        async fn head(&self) -> Result<u64, ChainError> {
            std::future::pending().await
        }
        async fn logs(&self, _: &Filter, _: u64, _: u64) -> Result<Vec<Log>, ChainError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_read_the_node_never_answers_ends_at_the_stop() {
        let cursor = Box::new(KvCursor::new(KvStore::memory(), "b"));
        let poll = Duration::from_millis(5);
        let mut f = Follower::new("test", Arc::new(SilentNode), Filter::new(), cursor, Start::Head, poll).unwrap();
        let token = CancellationToken::new();
        let stop = token.clone();
        let stopper = tokio::spawn(async move {
            tokio::task::yield_now().await;
            stop.cancel();
        });
        let next = tokio::time::timeout(Duration::from_secs(60), f.next(&token)).await;
        assert!(matches!(next, Ok(None)), "the stop ends the read");
        stopper.await.unwrap();
    }
}
