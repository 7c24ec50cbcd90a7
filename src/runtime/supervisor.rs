//! The one place tasks are spawned. Every task has a name and belongs to a stage; the
//! [`Supervisor`] stops the process cleanly on SIGINT or SIGTERM, or as soon as a task
//! fails, panics, or (for a service task) stops on its own, and says which.
//!
//! Use: [`Supervisor::new`], hand [`Tasks`] (cheap to clone) to whatever spawns, then
//! [`Supervisor::run`] until the process should end. Loops watch [`Tasks::token`]; nothing
//! is aborted. A process of several services starts the later ones on a later stage
//! ([`Tasks::stage`]): the stop goes from the last stage to the first, each stage's tasks
//! finishing before the next stage is told to stop, so a party still reaches the solver it
//! says goodbye to.

use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long tasks get to finish after the shutdown began, all stages together.
pub const GRACE: Duration = Duration::from_secs(15);

/// An error a task ended with.
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the process stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C) or SIGTERM.
    Signal,
    /// Someone cancelled the first stage's token (a one-shot command finished, a test).
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

/// The tasks of one stage and the token they watch.
struct Stage {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// A handle for spawning named tasks on one stage of a [`Supervisor`].
#[derive(Clone)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
    stages: Arc<Mutex<Vec<Stage>>>,
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
    /// The token this stage's loops watch: cancelled when the stop reaches this stage.
    /// Cancelling the first stage's token (the handle [`Supervisor::tasks`] gives) asks the
    /// supervisor to stop the process, and stops every stage at once.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether this stage is stopping.
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A handle for a new stage, whose tasks are told to stop, and awaited, before those of
    /// this stage and of every stage made before it. `dcn dev` starts the solver on the
    /// first stage and the parties on the next, so the parties stop while the solver still
    /// answers them.
    pub fn stage(&self) -> Tasks {
        let stage = Stage { token: self.token.child_token(), tracker: TaskTracker::new() };
        let tasks = Tasks { token: stage.token.clone(), tracker: stage.tracker.clone(), ..self.clone() };
        self.stages.lock().unwrap_or_else(|p| p.into_inner()).push(stage);
        tasks
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

    /// Spawns a service task, which runs until its stage's token is cancelled: ending
    /// before that, even with `Ok`, stops the process.
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
                // The supervisor stops the stages in order; a task cancels no token itself.
                Some(error) => {
                    tracing::error!(task = %name, %error, "task failed: stopping");
                    let _ = this.failures.send(Failure { task: name, error });
                }
                None => tracing::debug!(task = %name, "task done"),
            }
        });
    }

    /// Names of the tasks still running, on every stage.
    pub fn running(&self) -> Vec<String> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

/// SIGINT and SIGTERM, listened for from [`Signals::listen`] on: a signal that comes while
/// nothing waits for it is kept for the next [`Signals::recv`].
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Starts listening. From then on SIGINT and SIGTERM no longer end the process by
    /// themselves: whoever holds this decides.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// The next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }
}

/// Owns the tasks of a process and decides when it stops.
pub struct Supervisor {
    tasks: Tasks,
    failures: mpsc::UnboundedReceiver<Failure>,
    signals: Option<Signals>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no tasks yet, and one stage.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let first = Stage { token: CancellationToken::new(), tracker: TaskTracker::new() };
        let tasks = Tasks {
            token: first.token.clone(),
            tracker: first.tracker.clone(),
            stages: Arc::new(Mutex::new(vec![first])),
            failures: tx,
            running: Arc::default(),
            next_id: Arc::default(),
        };
        Self { tasks, failures: rx, signals: None }
    }

    /// The handle to spawn with, on the first stage.
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// Listens for SIGINT and SIGTERM from now on rather than from [`Supervisor::run`]: a
    /// signal that comes while the process still starts its services (or has just said it
    /// runs) is kept, and `run(true)` begins the stop at once, instead of the signal
    /// killing the process outright.
    pub fn listen(&mut self) {
        if self.signals.is_none() {
            self.signals = listen_or_warn();
        }
    }

    /// Waits for a signal (when `signals`), a failure or a cancelled first-stage token;
    /// then stops the stages, the last made first: cancels its token and waits for its
    /// tasks before the next. All stages together get [`GRACE`]; past it, or at a second
    /// signal, the rest are cancelled at once and not waited for. Returns why it stopped; a
    /// failure during the stop is reported too.
    pub async fn run(mut self, signals: bool) -> Stop {
        let mut signals = if signals { self.signals.take().or_else(listen_or_warn) } else { None };
        let first = self.tasks.token.clone();
        let mut stop = tokio::select! {
            _ = next_signal(&mut signals) => Stop::Signal,
            Some(f) = self.failures.recv() => Stop::Failed { task: f.task, error: f.error },
            _ = first.cancelled() => Stop::Requested,
        };
        if stop == Stop::Signal {
            tracing::info!("signal received: stopping");
        }
        let deadline = tokio::time::Instant::now() + GRACE;
        loop {
            let Some(stage) = self.tasks.stages.lock().unwrap_or_else(|p| p.into_inner()).pop() else { break };
            stage.token.cancel();
            stage.tracker.close();
            let cut_short = tokio::select! {
                done = tokio::time::timeout_at(deadline, stage.tracker.wait()) => match done {
                    Ok(()) => false,
                    Err(_) => {
                        tracing::warn!(still_running = ?self.tasks.running(), "tasks did not stop within {} s", GRACE.as_secs());
                        true
                    }
                },
                _ = next_signal(&mut signals) => {
                    tracing::warn!(still_running = ?self.tasks.running(), "second signal: not waiting for tasks");
                    true
                }
            };
            if cut_short {
                // Every stage descends from the first: this cancels those left at once.
                first.cancel();
                break;
            }
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

/// Starts listening for SIGINT and SIGTERM; says so if it cannot.
fn listen_or_warn() -> Option<Signals> {
    match Signals::listen() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGINT and SIGTERM: stop this process with SIGKILL");
            None
        }
    }
}

/// The next signal of `signals`; never, without them.
async fn next_signal(signals: &mut Option<Signals>) {
    match signals {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
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

    /// What a stage's task saw: its stage's token cancelled while the first stage's was
    /// not (or was), then its end.
    async fn note_stop(
        name: &'static str,
        mine: CancellationToken,
        first: CancellationToken,
        log: Arc<Mutex<Vec<String>>>,
    ) {
        mine.cancelled().await;
        let first_up = !first.is_cancelled();
        log.lock().unwrap().push(format!("{name} stopping, first stage up: {first_up}"));
        // A goodbye that takes a few turns of the scheduler (a party cancelling its offer).
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        log.lock().unwrap().push(format!("{name} done"));
    }

    #[tokio::test]
    async fn the_last_stage_stops_and_finishes_before_the_first_is_told() {
        let sup = Supervisor::new();
        let solver = sup.tasks();
        let parties = solver.stage();
        let log = Arc::new(Mutex::new(Vec::new()));
        let first = solver.token().clone();
        let (l, t, f) = (log.clone(), solver.token().clone(), first.clone());
        solver.spawn_service("solver/http", async move {
            note_stop("solver", t, f, l).await;
            Ok::<_, Boom>(())
        });
        for name in ["provider", "mediator"] {
            let (l, t, f) = (log.clone(), parties.token().clone(), first.clone());
            parties.spawn_service(name, async move {
                note_stop(name, t, f, l).await;
                Ok::<_, Boom>(())
            });
        }
        // A failing party starts the stop, as Ctrl-C would.
        parties.spawn("provider/deal 0x05", async { Err::<(), _>(Boom) });
        let stop = sup.run(false).await;
        assert_eq!(stop, Stop::Failed { task: "provider/deal 0x05".into(), error: "disk on fire".into() });
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 6, "{log:?}");
        let solver_told = log.iter().position(|l| l.starts_with("solver stopping")).unwrap();
        assert_eq!(solver_told, 4, "the solver is told last: {log:?}");
        assert!(log[..4].iter().all(|l| l.ends_with("done") || l.ends_with("up: true")), "{log:?}");
        assert_eq!(log[5], "solver done");
        assert!(solver.running().is_empty());
    }

    #[tokio::test]
    async fn cancelling_the_first_stage_stops_every_stage() {
        let sup = Supervisor::new();
        let solver = sup.tasks();
        let parties = solver.stage();
        let token = parties.token().clone();
        parties.spawn_service("provider", async move {
            token.cancelled().await;
            Ok::<_, Boom>(())
        });
        solver.token().cancel();
        assert!(parties.is_stopping(), "a later stage's token descends from the first");
        assert_eq!(sup.run(false).await, Stop::Requested);
        assert!(parties.running().is_empty());
    }
}
