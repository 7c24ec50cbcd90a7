//! The one place tasks are spawned. Every task has a name and shares one cancellation
//! token; the [`Supervisor`] stops the process cleanly on SIGINT or SIGTERM, or as soon as a
//! task fails, panics, or (for a service task) stops on its own, and says which.
//!
//! Use: [`Supervisor::new`], hand [`Tasks`] (cheap to clone) to whatever spawns, then
//! [`Supervisor::run`] until the process should end. Loops watch [`Tasks::token`]; nothing
//! is aborted.

use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long tasks get to finish after the shutdown began.
pub const GRACE: Duration = Duration::from_secs(15);

/// An error a task ended with.
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the process stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C) or SIGTERM.
    Signal,
    /// Someone cancelled the token (a one-shot command finished, a test).
    Requested,
    /// A task failed, panicked or, being a service, stopped on its own.
    Failed {
        /// The task's name.
        task: String,
        /// What happened, with its causes.
        error: String,
    },
}

/// The process stopped because a task failed.
#[derive(Debug, thiserror::Error)]
#[error("task `{task}` failed: {error}")]
pub struct TaskFailed {
    /// The task's name.
    pub task: String,
    /// What happened.
    pub error: String,
}

struct Failure {
    task: String,
    error: String,
}

/// A handle for spawning named tasks under a [`Supervisor`].
#[derive(Clone)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
    failures: mpsc::UnboundedSender<Failure>,
    running: Arc<Mutex<BTreeMap<u64, String>>>,
    next_id: Arc<AtomicU64>,
}

/// Renders an error and its sources on one line.
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_string(),
    }
}

impl Tasks {
    /// The token every loop watches: cancelled when the process stops.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether the process is stopping.
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Spawns `task`, which may end with `Ok` at any time (a deal that is done). An error
    /// or a panic stops the process.
    pub fn spawn<F, E>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        self.start(name.into(), task, false);
    }

    /// Spawns a service task, which runs until the token is cancelled: ending before that,
    /// even with `Ok`, stops the process.
    pub fn spawn_service<F, E>(&self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        self.start(name.into(), task, true);
    }

    fn start<F, E>(&self, name: String, task: F, service: bool)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id, name.clone());
        let this = self.clone();
        self.tracker.spawn(async move {
            let outcome = AssertUnwindSafe(task).catch_unwind().await;
            this.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            let error = match outcome {
                Ok(Ok(())) if service && !this.token.is_cancelled() => Some("stopped on its own".to_string()),
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(chain_text(e.into().as_ref())),
                Err(payload) => Some(panic_text(payload.as_ref())),
            };
            match error {
                Some(error) => {
                    tracing::error!(task = %name, %error, "task failed: stopping");
                    let _ = this.failures.send(Failure { task: name, error });
                    this.token.cancel();
                }
                None => tracing::debug!(task = %name, "task done"),
            }
        });
    }

    /// Names of the tasks still running.
    pub fn running(&self) -> Vec<String> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

/// Owns the tasks of a process and decides when it stops.
pub struct Supervisor {
    tasks: Tasks,
    failures: mpsc::UnboundedReceiver<Failure>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no tasks yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = Tasks {
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            failures: tx,
            running: Arc::default(),
            next_id: Arc::default(),
        };
        Self { tasks, failures: rx }
    }

    /// The handle to spawn with.
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// Waits for a signal (when `signals`), a failure or a cancelled token; then cancels
    /// every task and waits up to [`GRACE`] for them to finish (a second signal stops the
    /// wait). Returns why it stopped; a failure during the wait is reported too.
    pub async fn run(mut self, signals: bool) -> Stop {
        let token = self.tasks.token.clone();
        let signal = || async move {
            if signals {
                shutdown_signal().await
            } else {
                std::future::pending::<()>().await
            }
        };
        let mut stop = tokio::select! {
            _ = signal() => Stop::Signal,
            Some(f) = self.failures.recv() => Stop::Failed { task: f.task, error: f.error },
            _ = token.cancelled() => Stop::Requested,
        };
        token.cancel();
        self.tasks.tracker.close();
        tokio::select! {
            done = tokio::time::timeout(GRACE, self.tasks.tracker.wait()) => {
                if done.is_err() {
                    tracing::warn!(still_running = ?self.tasks.running(), "tasks did not stop within {} s", GRACE.as_secs());
                }
            }
            _ = signal() => tracing::warn!(still_running = ?self.tasks.running(), "second signal: not waiting for tasks"),
        }
        // A failure that came with the stop, or while the tasks were stopping, is what
        // the process reports (a failure is what stops it first, if there was one).
        if !matches!(stop, Stop::Failed { .. }) {
            if let Ok(f) = self.failures.try_recv() {
                stop = Stop::Failed { task: f.task, error: f.error };
            }
        }
        stop
    }

    /// [`Supervisor::run`], as a command's result: `Err` when a task failed.
    pub async fn run_to_end(self, signals: bool) -> Result<Stop, TaskFailed> {
        match self.run(signals).await {
            Stop::Failed { task, error } => Err(TaskFailed { task, error }),
            other => Ok(other),
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct Boom;

    #[tokio::test]
    async fn a_failing_task_stops_every_task_and_is_named() {
        let sup = Supervisor::new();
        let tasks = sup.tasks();
        let token = tasks.token().clone();
        tasks.spawn_service("provider/events", async move {
            token.cancelled().await;
            Ok::<_, Boom>(())
        });
        tasks.spawn("provider/deal 0x01", async { Err::<(), _>(Boom) });
        let stop = sup.run(false).await;
        assert_eq!(stop, Stop::Failed { task: "provider/deal 0x01".into(), error: "disk on fire".into() });
        assert!(tasks.running().is_empty(), "the service saw the token and stopped");
    }

    #[tokio::test]
    async fn a_panic_is_a_failure_with_its_message() {
        let sup = Supervisor::new();
        sup.tasks().spawn("mediator/deal 0x02", async {
            if std::hint::black_box(true) {
                panic!("index out of range");
            }
            Ok::<_, Boom>(())
        });
        match sup.run(false).await {
            Stop::Failed { task, error } => {
                assert_eq!(task, "mediator/deal 0x02");
                assert!(error.contains("index out of range"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_service_that_ends_early_stops_the_process_but_a_done_deal_does_not() {
        let sup = Supervisor::new();
        let tasks = sup.tasks();
        tasks.spawn("provider/deal 0x03", async { Ok::<_, Boom>(()) });
        tokio::task::yield_now().await;
        tasks.spawn_service("solver/http", async { Ok::<_, Boom>(()) });
        match sup.run(false).await {
            Stop::Failed { task, error } => {
                assert_eq!((task.as_str(), error.as_str()), ("solver/http", "stopped on its own"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failure_while_stopping_is_still_reported() {
        let sup = Supervisor::new();
        let tasks = sup.tasks();
        let token = tasks.token().clone();
        tasks.spawn("provider/deal 0x04", async move {
            token.cancelled().await;
            Err::<(), _>(Boom)
        });
        tasks.token().cancel();
        assert_eq!(
            sup.run(false).await,
            Stop::Failed { task: "provider/deal 0x04".into(), error: "disk on fire".into() }
        );
    }

    #[tokio::test]
    async fn cancelling_the_token_stops_cleanly() {
        let sup = Supervisor::new();
        let tasks = sup.tasks();
        let token = tasks.token().clone();
        tasks.spawn_service("jobboard/requests", async move {
            token.cancelled().await;
            Ok::<_, Boom>(())
        });
        tasks.token().cancel();
        assert_eq!(sup.run(false).await, Stop::Requested);
        assert!(tasks.running().is_empty());
    }
}
