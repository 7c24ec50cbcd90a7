//! `DockerExecutor`: runs each job in a locked-down container through bollard.
//!
//! Sandbox: an unprivileged user (uid 65534) unless the module asks for root and the
//! provider allows it; no network unless the module asks and the provider allows; memory
//! (no swap), CPU and pid limits; read-only root with only `/outputs` (a file system of the
//! job's output size, `nosuid,nodev`: [`super::scratch`]) and `/tmp` (tmpfs) writable; all
//! capabilities dropped; no-new-privileges; `NVIDIA_VISIBLE_DEVICES` naming exactly the
//! job's GPUs (`void` for none); the OCI runtime the provider chose (`runsc` for gVisor); a
//! wall-clock timeout after which the container is killed.
//!
//! Output is read live from the container's attached streams, never from its log file:
//! stdout up to [`MAX_STDOUT_BYTES`] (past it the job is stopped and delivered as the error
//! bundle), the tail of stderr. The json-file log is capped at [`LOG_MAX_SIZE`] as the
//! host's backstop. The container is removed on every path: success, failure, timeout, and
//! the run future being dropped.

use super::gpu::{GpuLease, GpuPool};
use super::image::{ensure_image, PullLimits};
use super::scratch::{self, OutputsFs, Scratch};
use super::{BoxFuture, Executor, ExecutorError, Policy, Prepared, RunOutcome, Termination};
use crate::bundle::{BUNDLE_STDERR_BYTES, MAX_STDOUT_BYTES};
use crate::types::{JobSpec, NetworkPolicy, Resources};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptions, RemoveContainerOptionsBuilder,
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

/// The json-file log's cap per container: the host's backstop (THREATS X4). dcn reads a
/// job's output from its attached streams, never from this file.
pub const LOG_MAX_SIZE: &str = "16m";

/// How the Docker executor sandboxes jobs.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Network access and root, for modules that ask.
    pub policy: Policy,
    /// Most processes a job may have.
    pub pids_limit: i64,
    /// Size of the job's `/tmp` in MB.
    pub tmp_mb: u64,
    /// The OCI runtime registered with Docker that runs jobs (`runsc` for gVisor); `None`:
    /// the engine's default.
    pub runtime: Option<String>,
    /// How a job's `/outputs` is made.
    pub outputs_fs: OutputsFs,
    /// Time and size limits on pulling an image to run a job.
    pub pull: PullLimits,
    /// What this machine offers.
    pub capacity: Resources,
    /// Extra labels on every container (tests use them to find leftovers).
    pub labels: HashMap<String, String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            pids_limit: 256,
            tmp_mb: 64,
            runtime: None,
            outputs_fs: OutputsFs::Auto,
            pull: PullLimits::default(),
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
        if let Some(runtime) = &config.runtime {
            let info = docker.info().await.map_err(unavailable)?;
            let known: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
            if !known.contains(runtime) {
                return Err(ExecutorError::RuntimeMissing { runtime: runtime.clone(), known });
            }
        }
        if config.outputs_fs.resolve_for(scratch::is_root()) == OutputsFs::Bind {
            tracing::warn!(
                "jobs' /outputs are plain directories: a job's disk use is measured after it ends, not limited while it \
                 runs (run as root for a size-limited file system per job, executor.outputs_fs)"
            );
        }
        Ok(Self { docker, config, gpus })
    }

    /// The Docker client, for callers that manage images.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Pulls `image` if it is not present (a provider pre-pulls its allowed modules).
    /// Returns the image's ID.
    pub async fn ensure_image(&self, image: &str) -> Result<String, ExecutorError> {
        ensure_image(&self.docker, image, &self.config.pull).await
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
        let network = job.network == NetworkPolicy::Bridge && self.config.policy.allow_network;
        // The NVIDIA runtime reads this to choose the GPUs a container sees; set here, it
        // overrides an image's `ENV NVIDIA_VISIBLE_DEVICES=all` (THREATS X5).
        let visible = match lease {
            Some(l) => l.gpus().iter().map(|g| g.uuid.as_str()).collect::<Vec<_>>().join(","),
            None => "void".into(),
        };
        let mut env: Vec<String> = job.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("NVIDIA_VISIBLE_DEVICES={visible}"));
        let (uid, gid) = scratch::job_ids();
        let user = if job.run_as_root { "0:0".to_string() } else { format!("{uid}:{gid}") };
        let host_config = HostConfig {
            memory: Some(ram),
            memory_swap: Some(ram),
            nano_cpus: Some(cpu * 1_000_000),
            pids_limit: Some(self.config.pids_limit),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".into(),
                format!("rw,nosuid,nodev,mode=1777,size={}m", self.config.tmp_mb),
            )])),
            binds: Some(vec![format!("{}:/outputs:rw", outputs.display())]),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            network_mode: Some(if network { "bridge" } else { "none" }.into()),
            device_requests: lease.map(|l| vec![l.device_request()]),
            runtime: self.config.runtime.clone(),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".into(), LOG_MAX_SIZE.into()),
                    ("max-file".into(), "1".into()),
                ])),
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(job.image.clone()),
            entrypoint: Some(job.argv[..1].to_vec()),
            cmd: Some(job.argv[1..].to_vec()),
            env: Some(env),
            user: Some(user),
            labels: Some(labels),
            network_disabled: Some(!network),
            working_dir: Some("/tmp".into()),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    async fn container_state(&self, name: &str) -> Result<bollard::models::ContainerState, ExecutorError> {
        let inspected = self.docker.inspect_container(name, None).await;
        let inspected = inspected
            .map_err(|source| ExecutorError::Docker { what: "inspecting the job container".into(), source })?;
        Ok(inspected.state.unwrap_or_default())
    }

    async fn run_job(&self, job: &JobSpec, workdir: &Path) -> Result<RunOutcome, ExecutorError> {
        super::check_spec(job, &self.config.policy)?;
        let lease = match (job.resources.gpus, &self.gpus) {
            (0, _) => None,
            (n, Some(pool)) => {
                Some(pool.acquire(n, job.resources.vram_mb).map_err(|e| ExecutorError::Gpus(e.to_string()))?)
            }
            (n, None) => return Err(ExecutorError::Gpus(format!("job needs {n} GPU(s); this machine offers none"))),
        };
        ensure_image(&self.docker, &job.image, &self.config.pull).await?;

        let io = |what: String| move |source| ExecutorError::Io { what, source };
        std::fs::create_dir_all(workdir).map_err(io(format!("creating {}", workdir.display())))?;
        let workdir = workdir.canonicalize().map_err(io(format!("resolving {}", workdir.display())))?;
        let owner = if job.run_as_root { (0, 0) } else { scratch::job_ids() };
        let limit = job.output_limit_bytes();
        let scratch = Scratch::create(&workdir, limit, owner, self.config.outputs_fs).await?;

        let hash = job.content_hash().to_string();
        let name = format!("dcn-{}-{}-{}", &hash[2..14], std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let body = self.container_body(job, scratch.dir(), lease.as_ref());
        let docker_err = |what: &str| {
            let what = what.to_string();
            move |source| ExecutorError::Docker { what, source }
        };
        self.docker
            .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), body)
            .await
            .map_err(docker_err("creating the job container"))?;
        let guard = ContainerGuard { docker: self.docker.clone(), name: Some(name.clone()) };

        // Attached before it starts, so that nothing it writes is missed; the engine waits
        // for a slow reader rather than dropping output.
        let attach =
            AttachContainerOptionsBuilder::default().stdout(true).stderr(true).stream(true).logs(false).build();
        let attached = self
            .docker
            .attach_container(&name, Some(attach))
            .await
            .map_err(docker_err("attaching to the job container"))?;
        let (flooded_tx, mut flooded) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(read_streams(attached.output, flooded_tx));

        let started = Instant::now();
        self.docker.start_container(&name, None).await.map_err(docker_err("starting the job container"))?;
        let mut wait = self.docker.wait_container(&name, None);
        let deadline = tokio::time::sleep(Duration::from_secs(job.timeout_secs));
        tokio::pin!(deadline);
        let stop = tokio::select! {
            done = wait.next() => match done {
                Some(Ok(_)) | None | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => None,
                Some(Err(e)) => return Err(docker_err("waiting for the job container")(e)),
            },
            _ = &mut deadline => Some(Termination::TimedOut),
            Ok(()) = &mut flooded => Some(Termination::OutputOverLimit),
        };
        drop(wait);
        if let Some(why) = stop {
            tracing::warn!(container = %name, timeout_secs = job.timeout_secs, ?why, "stopping the job: killing it");
            let _ = self.docker.kill_container(&name, None::<KillContainerOptions>).await;
            let mut wait = self.docker.wait_container(&name, None);
            let _ = tokio::time::timeout(Duration::from_secs(10), wait.next()).await;
        }
        let duration = started.elapsed();

        let mut state = self.container_state(&name).await?;
        // A job killed by SIGKILL that we did not kill: the engine may record the OOM kill
        // a moment after the exit under load, so ask again briefly before calling it an exit.
        for _ in 0..20 {
            if stop.is_some() || state.oom_killed == Some(true) || state.exit_code != Some(137) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            state = self.container_state(&name).await?;
        }
        let exit_code = state.exit_code.unwrap_or(-1);
        let termination = match stop {
            Some(why) => why,
            None if state.oom_killed == Some(true) => Termination::OutOfMemory,
            None => Termination::Exited,
        };
        // The streams end when the container's do; a reader still going after that is cut.
        let (stdout, stderr) = match tokio::time::timeout(Duration::from_secs(10), reader).await {
            Ok(Ok(read)) => read.map_err(docker_err("reading the job's output"))?,
            Ok(Err(e)) => {
                return Err(ExecutorError::Io {
                    what: "reading the job's output".into(),
                    source: std::io::Error::other(e),
                })
            }
            Err(_) => {
                return Err(ExecutorError::Io {
                    what: "reading the job's output".into(),
                    source: std::io::Error::other("its streams did not end within 10 s of the job"),
                })
            }
        };
        guard.remove_now().await;

        // Measured where the job wrote it, by apparent and allocated size, before a byte is
        // copied: over the limit, nothing is (THREATS X3).
        let outputs = workdir.join("outputs");
        if outputs.exists() {
            std::fs::remove_dir_all(&outputs).map_err(io(format!("clearing {}", outputs.display())))?;
        }
        let measured = crate::bundle::Results { exit_code, stdout, stderr, outputs_dir: scratch.dir().to_path_buf() };
        let over = crate::bundle::over_limit(&measured, limit)
            .map_err(io(format!("measuring the job's output in {}", scratch.dir().display())))?;
        let crate::bundle::Results { stdout, stderr, .. } = measured;
        if over.is_none() {
            scratch::copy_out(scratch.dir(), &outputs)
                .map_err(io(format!("copying the job's output into {}", outputs.display())))?;
        } else {
            std::fs::create_dir_all(&outputs).map_err(io(format!("creating {}", outputs.display())))?;
        }
        drop(scratch);
        Ok(RunOutcome {
            exit_code,
            termination,
            stdout,
            stderr,
            outputs_dir: outputs,
            over_limit: over,
            duration,
            gpus: lease.as_ref().map(|l| l.gpus().iter().map(|g| g.uuid.clone()).collect()).unwrap_or_default(),
        })
    }
}

/// Reads a container's attached streams to their end: stdout up to one byte past
/// [`MAX_STDOUT_BYTES`] (then `flooded` is told, once), the last [`BUNDLE_STDERR_BYTES`] of
/// stderr. Keeps reading what follows, so that the job never blocks on a full pipe.
async fn read_streams(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send>,
    >,
    flooded: tokio::sync::oneshot::Sender<()>,
) -> Result<(Vec<u8>, Vec<u8>), bollard::errors::Error> {
    use bollard::container::LogOutput;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut flooded = Some(flooded);
    while let Some(item) = output.next().await {
        match item? {
            LogOutput::StdOut { message } => {
                let room = (MAX_STDOUT_BYTES + 1).saturating_sub(out.len());
                out.extend_from_slice(&message[..message.len().min(room)]);
                if out.len() > MAX_STDOUT_BYTES {
                    if let Some(tx) = flooded.take() {
                        let _ = tx.send(());
                    }
                }
            }
            LogOutput::StdErr { message } => {
                err.extend_from_slice(&message);
                if err.len() > 2 * BUNDLE_STDERR_BYTES {
                    err.drain(..err.len() - BUNDLE_STDERR_BYTES);
                }
            }
            _ => {}
        }
    }
    if err.len() > BUNDLE_STDERR_BYTES {
        err.drain(..err.len() - BUNDLE_STDERR_BYTES);
    }
    Ok((out, err))
}

impl Executor for DockerExecutor {
    fn run<'a>(&'a self, job: &'a JobSpec, workdir: &'a Path) -> BoxFuture<'a, Result<RunOutcome, ExecutorError>> {
        Box::pin(self.run_job(job, workdir))
    }

    fn prepare<'a>(&'a self, job: &'a JobSpec) -> BoxFuture<'a, Result<Prepared, ExecutorError>> {
        Box::pin(async move {
            super::check_spec(job, &self.config.policy)?;
            let have = self.gpus.as_ref().map_or(0, |p| p.gpus().len());
            if job.resources.gpus as usize > have {
                return Err(ExecutorError::Gpus(format!(
                    "the job needs {} GPU(s); this machine has {have}",
                    job.resources.gpus
                )));
            }
            let image_id = match tokio::time::timeout(PREPARE_PULL_TIMEOUT, self.ensure_image(&job.image)).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::gpu::Gpu;

    fn executor(config: DockerConfig) -> DockerExecutor {
        let docker = Docker::connect_with_local_defaults().expect("a client (it connects on first use)");
        DockerExecutor { docker, config, gpus: None }
    }

    fn env_of(body: &ContainerCreateBody) -> Vec<String> {
        body.env.clone().unwrap_or_default()
    }

    /// THREATS X5: a job without GPUs sees none whatever the engine's default runtime does;
    /// a GPU job sees exactly its lease, whatever its image says.
    #[test]
    fn the_gpus_a_job_sees_are_exactly_its_lease() {
        let e = executor(DockerConfig::default());
        let job = crate::testing::spec("moo");
        let body = e.container_body(&job, Path::new("/w/scratch"), None);
        assert!(env_of(&body).contains(&"NVIDIA_VISIBLE_DEVICES=void".to_string()), "{:?}", body.env);
        let gpu = |index: u32, uuid: &str| Gpu { index, uuid: uuid.into(), name: "H200".into(), vram_mb: 143_771 };
        let pool = GpuPool::new(vec![gpu(0, "GPU-a"), gpu(1, "GPU-b"), gpu(2, "GPU-c")]);
        let first = pool.acquire(1, 0).unwrap();
        let lease = pool.acquire(2, 0).unwrap();
        let body = e.container_body(&job, Path::new("/w/scratch"), Some(&lease));
        assert!(env_of(&body).contains(&"NVIDIA_VISIBLE_DEVICES=GPU-b,GPU-c".to_string()), "{:?}", body.env);
        let request = &body.host_config.as_ref().unwrap().device_requests.as_ref().unwrap()[0];
        assert_eq!(request.device_ids.as_deref(), Some(&["GPU-b".to_string(), "GPU-c".to_string()][..]));
        drop(first);
    }

    /// THREATS X2, X4: the user, the log cap and the runtime go into every container.
    #[test]
    fn containers_run_unprivileged_with_a_capped_log_under_the_chosen_runtime() {
        let e = executor(DockerConfig { runtime: Some("runsc".into()), ..Default::default() });
        let mut job = crate::testing::spec("moo");
        let body = e.container_body(&job, Path::new("/w/scratch"), None);
        let (uid, gid) = scratch::job_ids();
        assert_eq!(body.user.as_deref(), Some(format!("{uid}:{gid}").as_str()));
        assert_ne!(body.user.as_deref(), Some("0:0"));
        let host = body.host_config.unwrap();
        assert_eq!(host.runtime.as_deref(), Some("runsc"));
        let log = host.log_config.unwrap().config.unwrap();
        assert_eq!((log["max-size"].as_str(), log["max-file"].as_str()), (LOG_MAX_SIZE, "1"));
        assert_eq!(host.binds.unwrap(), vec!["/w/scratch:/outputs:rw".to_string()]);
        job.run_as_root = true;
        assert_eq!(e.container_body(&job, Path::new("/w/scratch"), None).user.as_deref(), Some("0:0"));
    }
}
