//! Executors run a [`JobSpec`] and hand back what happened. [`Executor`] is the seam;
//! [`docker::DockerExecutor`] is the default implementation. A job that exits non-zero,
//! runs out of memory or out of time is an outcome ([`Termination`]), not an error:
//! [`ExecutorError`] is for the machine failing to run the job at all.

pub mod docker;
pub mod gpu;
mod image;
pub mod scratch;

pub use image::PullLimits;

use crate::bundle::Results;
use crate::types::{JobSpec, Resources};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so that `Executor` can be used as `dyn Executor`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs jobs. Chosen once at the edge (config) and passed down as `Arc<dyn Executor>`.
pub trait Executor: Send + Sync {
    /// Runs `job`, with its `/outputs` written under `workdir/outputs`.
    fn run<'a>(&'a self, job: &'a JobSpec, workdir: &'a Path) -> BoxFuture<'a, Result<RunOutcome, ExecutorError>>;
    /// Checks, before a provider signs for `job`, that this executor can run it: the spec
    /// is one Docker takes ([`check_spec`]) and the image is here (pulled if it can be, in a
    /// bounded time). Nothing is run. Returns the image as inspected, to run that one.
    fn prepare<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<Prepared, ExecutorError>>;
    /// What this executor can run at once.
    fn capacity(&self) -> Resources;
}

/// What [`Executor::prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The image's local ID (`sha256:…`), as inspected: a provider runs exactly this image,
    /// whatever its tag names later.
    pub image_id: String,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// It exited by itself (any exit code).
    Exited,
    /// The kernel killed it for exceeding its memory limit.
    OutOfMemory,
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It wrote more than [`crate::bundle::MAX_STDOUT_BYTES`] to stdout and was killed.
    OutputOverLimit,
}

/// What a job did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Exit code (137 when killed).
    pub exit_code: i64,
    /// How it ended.
    pub termination: Termination,
    /// Standard output (truncated at the executor's log limit).
    pub stdout: Vec<u8>,
    /// Standard error (truncated likewise).
    pub stderr: Vec<u8>,
    /// Where its `/outputs` tree is (copied out of the job's file system; empty when the
    /// output was over the job's limit).
    pub outputs_dir: PathBuf,
    /// Why the job's output is over its limit ([`crate::bundle::over_limit`]), measured
    /// before it was copied out: its results are then the error bundle's.
    pub over_limit: Option<String>,
    /// Wall time from start to exit.
    pub duration: Duration,
    /// UUIDs of the GPUs it was given.
    pub gpus: Vec<String>,
}

impl RunOutcome {
    /// The parts that go into the result bundle: the error bundle's when the output was
    /// over the job's limit.
    pub fn results(&self) -> Results {
        match &self.over_limit {
            Some(why) => Results::error_parts(self.outputs_dir.clone(), why),
            None => Results {
                exit_code: self.exit_code,
                stdout: self.stdout.clone(),
                stderr: self.stderr.clone(),
                outputs_dir: self.outputs_dir.clone(),
            },
        }
    }
}

/// The machine could not run the job. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The configured OCI runtime is not registered with Docker.
    #[error(
        "the Docker engine has no runtime `{runtime}` (it has: {}). Register it in /etc/docker/daemon.json \
         (scripts/setup registers Debian's runsc as `runsc`), or unset executor.runtime",
        known.join(", ")
    )]
    RuntimeMissing {
        /// The runtime asked for.
        runtime: String,
        /// The runtimes the engine has.
        known: Vec<String>,
    },
    /// The Docker daemon does not answer.
    #[error(
        "cannot reach the Docker daemon: {0}. Start it (scripts/setup starts dockerd when run as root), \
         or point DOCKER_HOST at a running daemon"
    )]
    DockerUnavailable(String),
    /// The image is not here and cannot be pulled.
    #[error(
        "image {image} is not present and cannot be pulled ({reason}). Build the example images with \
         `make images`, or check that its registry is reachable"
    )]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// Why the pull failed.
        reason: String,
    },
    /// The job wants network access and this executor does not allow it.
    #[error("module `{0}` asks for network access, which this provider does not allow (see executor.allow_network)")]
    NetworkNotAllowed(String),
    /// The job asks to run as root and this executor does not allow it.
    #[error("module `{0}` asks to run as root in its container, which this provider does not allow (see executor.allow_root)")]
    RootNotAllowed(String),
    /// Not enough GPUs free or offered.
    #[error("cannot give the job its GPUs: {0}")]
    Gpus(String),
    /// The job spec cannot be run as given.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A Docker call failed.
    #[error("{what} failed: {source}")]
    Docker {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// Preparing the work directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Docker refuses a memory limit under 6 MiB.
pub const MIN_RAM_MB: u64 = 6;
/// Docker refuses fewer than 0.01 CPUs.
pub const MIN_CPU_MILLI: u64 = 10;

/// What a provider lets jobs have beyond the sandbox's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Whether modules that ask for network access get it.
    pub allow_network: bool,
    /// Whether modules that ask to run as root in their container (`run_as_root`) are run.
    pub allow_root: bool,
}

pub use crate::types::is_reserved_env;

/// Checks that `job` is a spec the engine takes, before anything is signed or run: a
/// command, resources at or above Docker's minimums (0 means the default), a timeout, an
/// image named with a tag or a digest (an untagged one would be whatever `latest` is on the
/// machine), no `NVIDIA_*` variables, and network access or root only where `policy`
/// allows them.
pub fn check_spec(job: &JobSpec, policy: &Policy) -> Result<(), ExecutorError> {
    let invalid = |why: String| Err(ExecutorError::InvalidJob(why));
    if job.network == crate::types::NetworkPolicy::Bridge && !policy.allow_network {
        return Err(ExecutorError::NetworkNotAllowed(job.module.name.clone()));
    }
    if job.run_as_root && !policy.allow_root {
        return Err(ExecutorError::RootNotAllowed(job.module.name.clone()));
    }
    if let Some(name) = job.env.keys().find(|k| is_reserved_env(k)) {
        return invalid(format!(
            "env `{}` is reserved: the provider sets NVIDIA_* variables to give a job exactly its GPUs",
            name.escape_debug()
        ));
    }
    if job.argv.first().is_none_or(|c| c.is_empty()) {
        return invalid("empty argv: the job names no command".into());
    }
    let r = &job.resources;
    if r.ram_mb != 0 && r.ram_mb < MIN_RAM_MB {
        return invalid(format!("ram_mb {} is under Docker's minimum of {MIN_RAM_MB} MB", r.ram_mb));
    }
    if r.cpu != 0 && r.cpu < MIN_CPU_MILLI {
        return invalid(format!("cpu {} milli-CPU is under Docker's minimum of {MIN_CPU_MILLI}", r.cpu));
    }
    if job.timeout_secs == 0 {
        return invalid("timeout_secs is 0".into());
    }
    if !image_is_pinned(&job.image) {
        return invalid(format!(
            "image `{}` names no tag or digest (name:tag or name@sha256:…)",
            job.image.escape_debug()
        ));
    }
    Ok(())
}

/// Whether `image` names a tag or a digest, and nothing a shell or the engine would read
/// otherwise.
fn image_is_pinned(image: &str) -> bool {
    let well_formed = !image.is_empty()
        && image.len() <= 512
        && image.chars().all(|c| c.is_ascii_alphanumeric() || "./:@_-".contains(c))
        && !image.starts_with(['-', '.', '/', ':', '@']);
    let last = image.rsplit('/').next().unwrap_or(image);
    well_formed
        && (image.contains("@sha256:") || last.split_once(':').is_some_and(|(n, t)| !n.is_empty() && !t.is_empty()))
}

impl ExecutorError {
    /// Whether running the same spec again on this machine fails the same way (the image
    /// is not here, the spec is invalid or wants a network it may not have), as opposed to
    /// a passing trouble (Docker down, a full disk, GPUs busy).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::ImageUnavailable { .. } | Self::InvalidJob(_) | Self::NetworkNotAllowed(_) | Self::RootNotAllowed(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// THREATS X2, X5: a spec cannot choose GPUs through the NVIDIA runtime's variables, nor
    /// root where the provider does not allow it.
    #[test]
    fn specs_may_not_set_nvidia_variables_nor_run_as_root_unless_allowed() {
        let strict = Policy::default();
        let mut job = crate::testing::spec("moo");
        assert!(check_spec(&job, &strict).is_ok());
        for name in ["NVIDIA_VISIBLE_DEVICES", "nvidia_driver_capabilities", "NVIDIA_REQUIRE_CUDA"] {
            let mut j = job.clone();
            j.env.insert(name.into(), "all".into());
            let err = check_spec(&j, &strict).unwrap_err();
            assert!(err.to_string().contains("reserved") && err.is_permanent(), "{name}: {err}");
        }
        job.run_as_root = true;
        let err = check_spec(&job, &strict).unwrap_err();
        assert!(matches!(err, ExecutorError::RootNotAllowed(_)) && err.is_permanent(), "{err}");
        assert!(err.to_string().contains("executor.allow_root"), "{err}");
        assert!(check_spec(&job, &Policy { allow_root: true, ..strict }).is_ok());
    }
}
