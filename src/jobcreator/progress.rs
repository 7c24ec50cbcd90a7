//! How a job's steps are shown: [`Step`] names them, [`Progress`] receives them as they
//! begin. [`LogProgress`] only logs (services); [`TerminalProgress`] draws a spinner per step
//! on a terminal and prints a plain line per step otherwise (`dcn run`).

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A step of a job, reported when it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The offer is posted; waiting for a provider.
    Matching,
    /// Creating the deal on chain.
    DealOnChain,
    /// The provider is running the job.
    Running,
    /// The result hash is on chain; downloading the bundle.
    ResultSubmitted,
    /// The bundle is downloaded and verified.
    Downloaded,
    /// Accepting the result on chain.
    Accepting,
    /// Challenging the result on chain.
    Challenging,
    /// Waiting for the mediator's verdict.
    AwaitingVerdict,
    /// Settling by `timeout` after a missed deadline.
    TimingOut,
}

impl Step {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Matching => "matching",
            Self::DealOnChain => "deal on chain",
            Self::Running => "running",
            Self::ResultSubmitted => "result submitted",
            Self::Downloaded => "downloaded",
            Self::Accepting => "accepted",
            Self::Challenging => "challenged",
            Self::AwaitingVerdict => "verdict",
            Self::TimingOut => "timed out",
        }
    }
}

/// Receives the steps as they begin, with a detail line.
pub trait Progress: Send + Sync {
    /// `step` begins.
    fn step(&self, step: Step, detail: &str);
}

/// A progress sink that only logs.
#[derive(Debug, Default)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn step(&self, step: Step, detail: &str) {
        tracing::info!(step = step.label(), "{detail}");
    }
}

/// The steps on stderr: a spinner per step on a terminal, finished with its time; a plain
/// line per step otherwise.
pub struct TerminalProgress {
    started: Instant,
    current: Mutex<Option<(Step, Instant, Option<ProgressBar>)>>,
    tty: bool,
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalProgress {
    /// Draws on stderr, as a terminal if it is one.
    pub fn new() -> Self {
        Self { started: Instant::now(), current: Mutex::new(None), tty: std::io::stderr().is_terminal() }
    }

    fn close(&self, mark: &str) {
        if let Some((step, at, bar)) = self.current.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let line = format!("{mark} {:<16} {:>7.2} s", step.label(), at.elapsed().as_secs_f64());
            match bar {
                Some(bar) => {
                    bar.set_style(
                        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.finish_with_message(line);
                }
                None => eprintln!("[dcn] {line}"),
            }
        }
    }

    /// The last step succeeded: marks it done and, off a terminal, prints the total.
    pub fn done(&self) {
        self.close("✔");
        if !self.tty {
            eprintln!("[dcn] total {:.2} s", self.started.elapsed().as_secs_f64());
        }
    }

    /// The last step failed.
    pub fn fail(&self) {
        self.close("✘");
    }
}

impl Progress for TerminalProgress {
    fn step(&self, step: Step, detail: &str) {
        self.close("✔");
        let bar = if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<16} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(step.label());
            bar.set_message(detail.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            eprintln!("[dcn] {}: {detail}", step.label());
            None
        };
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((step, Instant::now(), bar));
    }
}
