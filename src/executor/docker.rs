//! `DockerExecutor`: runs each job in a locked-down container through bollard.
//!
//! Sandbox: no network unless the module asks and the provider allows; memory (no swap),
//! CPU and pid limits; read-only root with only `/outputs` (a bind of the work directory)
//! and `/tmp` (tmpfs) writable; all capabilities dropped; no-new-privileges; a wall-clock
//! timeout after which the container is killed. The container is removed on every path:
//! success, failure, timeout, and the run future being dropped.

use super::gpu::{GpuLease, GpuPool};
use super::image::ensure_image;
use super::{BoxFuture, Executor, ExecutorError, Prepared, RunOutcome, Termination};
use crate::types::{JobSpec, NetworkPolicy, Resources};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Memory given to a job that declares none, in MB.
pub const DEFAULT_RAM_MB: u64 = 256;
/// CPU given to a job that declares none, in milli-CPU.
pub const DEFAULT_CPU: u64 = 1000;

/// How the Docker executor sandboxes jobs.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Whether modules that ask for network access get it.
    pub allow_network: bool,
    /// Most processes a job may have.
    pub pids_limit: i64,
    /// Size of the job's `/tmp` in MB.
    pub tmp_mb: u64,
    /// Most bytes of stdout (and of stderr) kept per job.
    pub max_log_bytes: usize,
    /// What this machine offers.
    pub capacity: Resources,
    /// Extra labels on every container (tests use them to find leftovers).
    pub labels: HashMap<String, String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            allow_network: false,
            pids_limit: 256,
            tmp_mb: 64,
            max_log_bytes: 16 << 20,
            capacity: Resources::default(),
            labels: HashMap::new(),
        }
    }
}

/// Runs jobs as Docker containers.
pub struct DockerExecutor {
    docker: Docker,
    config: DockerConfig,
    gpus: Option<Arc<GpuPool>>,
}

/// Label every dcn container carries.
pub const MANAGED_LABEL: &str = "dcn.managed";

static SEQ: AtomicU64 = AtomicU64::new(0);

impl DockerExecutor {
    /// Connects to the local Docker daemon (or `DOCKER_HOST`) and negotiates the API version.
    pub async fn connect(config: DockerConfig, gpus: Option<Arc<GpuPool>>) -> Result<Self, ExecutorError> {
        let unavailable = |e: bollard::errors::Error| ExecutorError::DockerUnavailable(e.to_string());
        let docker = Docker::connect_with_local_defaults().map_err(unavailable)?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| ExecutorError::DockerUnavailable("no answer within 10 s".into()))?
            .map_err(unavailable)?;
        docker.ping().await.map_err(unavailable)?;
        Ok(Self { docker, config, gpus })
    }

    /// The Docker client, for callers that manage images.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Pulls `image` if it is not present (a provider pre-pulls its allowed modules).
    /// Returns the image's ID.
    pub async fn ensure_image(&self, image: &str) -> Result<String, ExecutorError> {
        ensure_image(&self.docker, image).await
    }

    /// Removes containers left by an earlier run of this service (killed before it could
    /// clean up): every dcn container carrying all of this executor's extra labels.
    /// Returns how many were removed.
    pub async fn remove_leftovers(&self) -> Result<usize, ExecutorError> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        let mut labels = vec![format!("{MANAGED_LABEL}=true")];
        labels.extend(self.config.labels.iter().map(|(k, v)| format!("{k}={v}")));
        filters.insert("label".into(), labels);
        let opts =
            bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|source| ExecutorError::Docker { what: "listing leftover job containers".into(), source })?;
        let mut n = 0;
        for c in list {
            if let Some(id) = c.id {
                remove(&self.docker, &id).await;
                n += 1;
            }
        }
        Ok(n)
    }

    fn container_body(&self, job: &JobSpec, outputs: &Path, lease: Option<&GpuLease>) -> ContainerCreateBody {
        let r = &job.resources;
        let ram = if r.ram_mb == 0 { DEFAULT_RAM_MB } else { r.ram_mb } as i64 * 1024 * 1024;
        let cpu = if r.cpu == 0 { DEFAULT_CPU } else { r.cpu } as i64;
        let mut labels = self.config.labels.clone();
        labels.insert(MANAGED_LABEL.into(), "true".into());
        labels.insert("dcn.job".into(), job.content_hash().to_string());
        labels.insert("dcn.module".into(), format!("{}@{}", job.module.name, job.module.version));
        let network = job.network == NetworkPolicy::Bridge && self.config.allow_network;
        let host_config = HostConfig {
            memory: Some(ram),
            memory_swap: Some(ram),
            nano_cpus: Some(cpu * 1_000_000),
            pids_limit: Some(self.config.pids_limit),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([("/tmp".into(), format!("rw,nosuid,nodev,size={}m", self.config.tmp_mb))])),
            binds: Some(vec![format!("{}:/outputs:rw", outputs.display())]),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            network_mode: Some(if network { "bridge" } else { "none" }.into()),
            device_requests: lease.map(|l| vec![l.device_request()]),
            log_config: Some(HostConfigLogConfig { typ: Some("json-file".into()), config: None }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(job.image.clone()),
            entrypoint: Some(job.argv[..1].to_vec()),
            cmd: Some(job.argv[1..].to_vec()),
            env: Some(job.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            network_disabled: Some(!network),
            working_dir: Some("/tmp".into()),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    async fn run_job(&self, job: &JobSpec, workdir: &Path) -> Result<RunOutcome, ExecutorError> {
        super::check_spec(job, self.config.allow_network)?;
        let lease = match (job.resources.gpus, &self.gpus) {
            (0, _) => None,
            (n, Some(pool)) => {
                Some(pool.acquire(n, job.resources.vram_mb).map_err(|e| ExecutorError::Gpus(e.to_string()))?)
            }
            (n, None) => return Err(ExecutorError::Gpus(format!("job needs {n} GPU(s); this machine offers none"))),
        };
        ensure_image(&self.docker, &job.image).await?;

        let io = |what: String| move |source| ExecutorError::Io { what, source };
        let outputs = workdir.join("outputs");
        std::fs::create_dir_all(&outputs).map_err(io(format!("creating {}", outputs.display())))?;
        let outputs = outputs.canonicalize().map_err(io(format!("resolving {}", outputs.display())))?;

        let hash = job.content_hash().to_string();
        let name = format!("dcn-{}-{}-{}", &hash[2..14], std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let body = self.container_body(job, &outputs, lease.as_ref());
        let docker_err = |what: &str| {
            let what = what.to_string();
            move |source| ExecutorError::Docker { what, source }
        };
        self.docker
            .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body)
            .await
            .map_err(docker_err("creating the job container"))?;
        let guard = ContainerGuard { docker: self.docker.clone(), name: Some(name.clone()) };

        let started = Instant::now();
        self.docker.start_container(&name, None).await.map_err(docker_err("starting the job container"))?;
        let mut wait = self.docker.wait_container(&name, None);
        let timed_out = match tokio::time::timeout(Duration::from_secs(job.timeout_secs), wait.next()).await {
            Ok(Some(Ok(_))) | Ok(None) => false,
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))) => false,
            Ok(Some(Err(e))) => return Err(docker_err("waiting for the job container")(e)),
            Err(_) => true,
        };
        drop(wait);
        if timed_out {
            tracing::warn!(container = %name, timeout_secs = job.timeout_secs, "job timed out: killing it");
            let _ = self.docker.kill_container(&name, None::<KillContainerOptions>).await;
            let mut wait = self.docker.wait_container(&name, None);
            let _ = tokio::time::timeout(Duration::from_secs(10), wait.next()).await;
        }
        let duration = started.elapsed();

        let state = self
            .docker
            .inspect_container(&name, None)
            .await
            .map_err(docker_err("inspecting the job container"))?
            .state
            .unwrap_or_default();
        let exit_code = state.exit_code.unwrap_or(-1);
        let termination = if timed_out {
            Termination::TimedOut
        } else if state.oom_killed == Some(true) {
            Termination::OutOfMemory
        } else {
            Termination::Exited
        };

        let (stdout, stderr) = self.collect_logs(&name).await?;
        guard.remove_now().await;
        Ok(RunOutcome {
            exit_code,
            termination,
            stdout,
            stderr,
            outputs_dir: outputs,
            duration,
            gpus: lease.as_ref().map(|l| l.gpus().iter().map(|g| g.uuid.clone()).collect()).unwrap_or_default(),
        })
    }

    async fn collect_logs(&self, name: &str) -> Result<(Vec<u8>, Vec<u8>), ExecutorError> {
        use bollard::container::LogOutput;
        let max = self.config.max_log_bytes;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).follow(false).build();
        let mut logs = self.docker.logs(name, Some(opts));
        while let Some(item) = logs.next().await {
            let item =
                item.map_err(|source| ExecutorError::Docker { what: "reading the job's output".into(), source })?;
            let (buf, msg) = match item {
                LogOutput::StdOut { message } => (&mut out, message),
                LogOutput::StdErr { message } => (&mut err, message),
                _ => continue,
            };
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&msg[..msg.len().min(room)]);
        }
        Ok((out, err))
    }
}

impl Executor for DockerExecutor {
    fn run<'a>(&'a self, job: &'a JobSpec, workdir: &'a Path) -> BoxFuture<'a, Result<RunOutcome, ExecutorError>> {
        Box::pin(self.run_job(job, workdir))
    }

    fn prepare<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<Prepared, ExecutorError>> {
        Box::pin(async move {
            super::check_spec(job, self.config.allow_network)?;
            let have = self.gpus.as_ref().map_or(0, |p| p.gpus().len());
            if job.resources.gpus as usize > have {
                return Err(ExecutorError::Gpus(format!(
                    "the job needs {} GPU(s); this machine has {have}",
                    job.resources.gpus
                )));
            }
            let image_id =
                match tokio::time::timeout(PREPARE_PULL_TIMEOUT, ensure_image(&self.docker, &job.image)).await {
                    Ok(done) => done?,
                    Err(_) => {
                        return Err(ExecutorError::ImageUnavailable {
                            image: job.image.clone(),
                            reason: format!("the pull did not finish within {} s", PREPARE_PULL_TIMEOUT.as_secs()),
                        })
                    }
                };
            // A registry's image named by tag may be another image by the time a mediator
            // pulls it (the tag moved, or the registry answers each client differently),
            // and the provider would be blamed for the difference: only its digest names
            // one image everywhere. Images built on the machine have no registry digest.
            if !job.image.contains("@sha256:") {
                let inspected = self
                    .docker
                    .inspect_image(&job.image)
                    .await
                    .map_err(|e| ExecutorError::ImageUnavailable { image: job.image.clone(), reason: e.to_string() })?;
                if let Some(digest) = inspected.repo_digests.unwrap_or_default().first() {
                    return Err(ExecutorError::InvalidJob(format!(
                        "image `{}` comes from a registry but the job names it by tag: name it by digest \
                         (for example `{}`), so that every machine that runs the job runs this image",
                        job.image.escape_debug(),
                        digest.escape_debug()
                    )));
                }
            }
            Ok(Prepared { image_id })
        })
    }

    fn capacity(&self) -> Resources {
        self.config.capacity
    }
}

/// The longest a provider waits for an image pull before it signs (pre-pull big images).
const PREPARE_PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// Removes the container when dropped, so that errors, timeouts and cancellation never
/// leave one behind.
struct ContainerGuard {
    docker: Docker,
    name: Option<String>,
}

impl ContainerGuard {
    async fn remove_now(mut self) {
        if let Some(name) = self.name.take() {
            remove(&self.docker, &name).await;
        }
    }
}

async fn remove(docker: &Docker, name: &str) {
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    if let Err(e) = docker.remove_container(name, Some(opts)).await {
        tracing::warn!(container = %name, error = %e, "could not remove the job container");
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let (Some(name), Ok(handle)) = (self.name.take(), tokio::runtime::Handle::try_current()) {
            let docker = self.docker.clone();
            handle.spawn(async move { remove(&docker, &name).await });
        }
    }
}
