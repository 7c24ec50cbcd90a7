//! The command edge: each command's composition root, which resolves its role's config from
//! the settings and the command-line overrides, connects the account, builds the service
//! from its dependencies (chain, solver API, store, executor) and runs it under the
//! [`Supervisor`]. `dcn dev` ([`dev`]) composes the same services in one process. Errors are
//! `eyre` reports here and only here.

pub mod admin;
pub mod bundle;
pub mod dev;
pub mod jobboard;
pub mod jobs;
pub mod mediator;
pub mod node;
pub mod provider;
pub mod run;
pub mod solver;

use crate::runtime::{Stop, Supervisor, TaskFailed, Tasks};
use std::future::Future;

/// Runs a long-running service. `start` connects, finds (or waits for) what the service
/// needs and spawns its tasks; it runs as the task `start`, so that Ctrl-C and SIGTERM
/// reach a start that waits and stop it at once. An error of the start is the command's
/// error, as the start said it. Then the service runs until a signal or a failing task.
pub async fn serve<F, Fut>(start: F) -> eyre::Result<()>
where
    F: FnOnce(Tasks) -> Fut,
    Fut: Future<Output = eyre::Result<()>> + Send + 'static,
{
    let mut supervisor = Supervisor::new();
    supervisor.listen();
    let tasks = supervisor.tasks();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let starting = start(tasks.clone());
    let stop = tasks.clone();
    tasks.spawn("start", async move {
        if let Err(e) = starting.await {
            let _ = tx.send(e);
            stop.token().cancel();
        }
        Ok::<_, std::convert::Infallible>(())
    });
    let stopped = supervisor.run(true).await;
    if let Ok(e) = rx.try_recv() {
        return Err(e);
    }
    match stopped {
        Stop::Failed { task, error } => Err(TaskFailed { task, error }.into()),
        Stop::Signal | Stop::Requested => Ok(()),
    }
}

/// Runs a one-shot command as the task `name` under a supervisor, so that Ctrl-C and
/// SIGTERM reach it through its token; returns what the task returned.
pub async fn one_shot<T, F, Fut>(name: &'static str, body: F) -> eyre::Result<T>
where
    F: FnOnce(Tasks) -> Fut,
    Fut: Future<Output = eyre::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let supervisor = Supervisor::new();
    let tasks = supervisor.tasks();
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let work = body(tasks.clone());
    let done = tasks.clone();
    tasks.spawn(name, async move {
        let _ = tx.send(work.await);
        done.token().cancel();
        Ok::<_, std::convert::Infallible>(())
    });
    let stop = supervisor.run(true).await;
    // The supervisor waited for the task (up to its grace period): it either answered or
    // is abandoned.
    match (rx.try_recv(), stop) {
        (Ok(result), _) => result,
        (Err(_), Stop::Failed { task, error }) => Err(eyre::eyre!("task `{task}` failed: {error}")),
        (Err(_), _) => Err(eyre::eyre!("interrupted before `{name}` finished")),
    }
}
