//! How long-running work runs: the [`supervisor`] (named tasks in stages that stop in
//! order, SIGINT/SIGTERM, a failing task stops the process cleanly), the log [`follower`] (a
//! filter, a stored cursor and a backoff) and [`backoff`] for retries. Every role's service
//! runs on these; none spawns a task or sleeps in a retry loop by itself.

pub mod backoff;
pub mod follower;
pub mod supervisor;

pub use backoff::Backoff;
pub use follower::{Batch, Cursor, CursorError, Follower, KvCursor, Start};
pub use supervisor::{Signals, Stop, Supervisor, TaskFailed, Tasks};
