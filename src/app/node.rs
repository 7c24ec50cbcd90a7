//! What every service and `dcn run` set up first: the network, its deployment, this
//! account's key and a chain connection ([`Account`]); then, as needed, the solver, the
//! mediators and a Docker executor. A one-shot command finds the solver and the mediators
//! or fails at once ([`Account::solver`]); a service waits until the network's owner has
//! approved them ([`Account::await_solver`]), so that services can be started before the
//! approvals.

use crate::chain::{self, accounts, AlloyChain, ChainClient, Deployment, DevRole, Role};
use crate::config::Settings;
use crate::executor::docker::{DockerConfig, DockerExecutor};
use crate::executor::gpu::GpuPool;
use crate::protocol::registry::{find_mediators, find_solver, list, DiscoveryError, Listing};
use crate::protocol::SolverClient;
use crate::types::Resources;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often a service waiting for an approved solver or mediator reads the registry.
const APPROVAL_POLL: Duration = Duration::from_secs(2);
/// How often it says again what it waits for.
const WAITING_REMINDER: Duration = Duration::from_secs(60);

/// A connected account on a deployed network.
#[derive(Clone)]
pub struct Account {
    /// The chain connection, signing as this account.
    pub client: ChainClient,
    /// The same key, for off-chain signatures.
    pub signer: PrivateKeySigner,
    /// The contracts.
    pub deployment: Deployment,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("client", &self.client).finish()
    }
}

impl Account {
    /// Connects as this process's account (`dev_role`'s key on a development network)
    /// and checks it has gas money.
    pub async fn connect(settings: &Settings, dev_role: DevRole) -> eyre::Result<Self> {
        let net = settings.network()?;
        let signer = accounts::service_signer(settings, &net, dev_role)?;
        let client = chain::connect(&net, signer.clone()).await?.sharing_turns_in(settings.data_dir());
        let deployment = chain::locate(&client, settings.data_dir()).await?;
        client.require_gas_money().await?;
        Ok(Self { client, signer, deployment })
    }

    /// This account's address.
    pub fn address(&self) -> Address {
        self.client.from
    }

    /// The chain as the roles see it.
    pub fn chain(&self) -> Arc<AlloyChain> {
        Arc::new(AlloyChain::new(self.client.clone(), self.deployment.contracts))
    }

    /// The solver named by `configured` (a URL or an address), else the registry's.
    pub async fn solver(&self, configured: Option<&str>) -> eyre::Result<SolverClient> {
        Ok(find_solver(&self.client, &self.deployment.contracts, configured).await?)
    }

    /// The mediators to trust: `configured`, else the approved ones (never this account).
    pub async fn mediators(&self, configured: &[Address]) -> eyre::Result<Vec<Address>> {
        Ok(find_mediators(&self.client, &self.deployment.contracts, configured).await?)
    }

    /// [`Account::solver`] for a service: while no solver the network's owner approved is
    /// registered, waits for one, saying once (then every minute) what it waits for and
    /// how the owner approves one. `None` if `stop` is cancelled first.
    pub async fn await_solver(
        &self,
        configured: Option<&str>,
        stop: &CancellationToken,
    ) -> eyre::Result<Option<SolverClient>> {
        self.await_approved(Role::Solver, stop, || find_solver(&self.client, &self.deployment.contracts, configured))
            .await
    }

    /// [`Account::mediators`] for a service, waiting as [`Account::await_solver`] does.
    pub async fn await_mediators(
        &self,
        configured: &[Address],
        stop: &CancellationToken,
    ) -> eyre::Result<Option<Vec<Address>>> {
        self.await_approved(Role::Mediator, stop, || {
            find_mediators(&self.client, &self.deployment.contracts, configured)
        })
        .await
    }

    async fn await_approved<T, Fut>(
        &self,
        role: Role,
        stop: &CancellationToken,
        mut find: impl FnMut() -> Fut,
    ) -> eyre::Result<Option<T>>
    where
        Fut: Future<Output = Result<T, DiscoveryError>>,
    {
        let mut said: Option<Instant> = None;
        loop {
            let found = tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                found = find() => found,
            };
            match found {
                Ok(found) => {
                    if said.is_some() {
                        tracing::info!(role = role.name(), "an approved {} is registered: going on", role.name());
                    }
                    return Ok(Some(found));
                }
                Err(DiscoveryError::NoneApproved { flag, .. }) => {
                    if said.is_none_or(|at| at.elapsed() >= WAITING_REMINDER) {
                        self.say_what_is_awaited(role, flag).await;
                        said = Some(Instant::now());
                    }
                }
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep(APPROVAL_POLL) => {}
            }
        }
    }

    /// Logs what a service waits for: which registry, on which network, who registered
    /// without approval and who is approved but not registered, and the commands that help.
    async fn say_what_is_awaited(&self, role: Role, flag: &str) {
        let registry = self.deployment.contracts.registry;
        let read = |which| list(&self.client, registry, role, which, 0, 10);
        let not_approved: Vec<Address> = match read(Listing::Registered).await {
            Ok(rows) => rows.into_iter().filter(|r| !r.approved).map(|r| r.account).collect(),
            Err(_) => Vec::new(),
        };
        let not_registered: Vec<Address> = match read(Listing::Approved).await {
            Ok(rows) => rows.into_iter().filter(|r| !r.registered).map(|r| r.account).collect(),
            Err(_) => Vec::new(),
        };
        let name = role.name();
        tracing::info!(
            role = name,
            %registry,
            network = %self.client.network.name,
            registered_not_approved = ?not_approved,
            approved_not_registered = ?not_registered,
            "waiting for a {name} the network's owner approved: none is registered in DcnRegistry {registry} on \
             network `{}` yet. The owner approves one with `dcn registry approve {name} 0x…` (`dcn registry list \
             {name}` shows who registered); an approved one registers when it starts. Or name one you trust with \
             {flag}",
            self.client.network.name
        );
    }
}

/// The sandbox settings of `settings`, for a Docker executor.
pub fn executor_config(settings: &Settings) -> DockerConfig {
    let e = &settings.executor;
    DockerConfig {
        policy: crate::executor::Policy { allow_network: e.allow_network, allow_root: e.allow_root },
        pids_limit: e.pids_limit,
        tmp_mb: e.tmp_mb,
        runtime: e.runtime(),
        outputs_fs: e.outputs_fs,
        pull: crate::executor::PullLimits {
            timeout: std::time::Duration::from_secs(e.pull_timeout_secs),
            max_bytes: e.max_image_mb.saturating_mul(1 << 20),
        },
        ..Default::default()
    }
}

/// A Docker executor with the sandbox settings of `settings`, offering `capacity`, with
/// `gpus` if any, labelling its containers with `labels`.
pub async fn docker_executor(
    settings: &Settings,
    capacity: Resources,
    gpus: Option<Arc<GpuPool>>,
    labels: HashMap<String, String>,
) -> eyre::Result<DockerExecutor> {
    let config = DockerConfig { capacity, labels, ..executor_config(settings) };
    Ok(DockerExecutor::connect(config, gpus).await?)
}

/// A short stable label for the service keeping its state in `state_dir`: two services
/// with one key (tests, a second data dir) never remove each other's containers.
pub fn instance_label(state_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let dir = state_dir.canonicalize().unwrap_or_else(|_| state_dir.to_path_buf());
    hex::encode(&Sha256::digest(dir.to_string_lossy().as_bytes())[..8])
}

/// Removes the job containers an earlier run of this service left (killed before it could
/// clean up).
pub async fn remove_leftovers(executor: &DockerExecutor) {
    match executor.remove_leftovers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "removed job containers left by an earlier run"),
        Err(e) => tracing::warn!(error = %e, "cannot look for leftover job containers"),
    }
}

/// Creates `dir` (a service's state directory).
pub fn state_dir(dir: &Path) -> eyre::Result<()> {
    use eyre::WrapErr;
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))
}
