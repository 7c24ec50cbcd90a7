//! What every service and `dcn run` set up first: the network, its deployment, this
//! account's key and a chain connection; then, as needed, the solver and an executor.

use crate::chain::{self, accounts, ChainClient, Deployment, DevRole};
use crate::config::Settings;
use crate::discovery;
use crate::executor::docker::{DockerConfig, DockerExecutor};
use crate::executor::gpu::GpuPool;
use crate::solver::client::SolverClient;
use crate::types::Resources;
use alloy::signers::local::PrivateKeySigner;
use std::collections::HashMap;
use std::sync::Arc;

/// A connected account on a deployed network.
#[derive(Clone)]
pub struct Node {
    /// The chain connection, signing as this account.
    pub chain: ChainClient,
    /// The same key, for off-chain signatures.
    pub signer: PrivateKeySigner,
    /// The contracts.
    pub deployment: Deployment,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("chain", &self.chain).finish()
    }
}

impl Node {
    /// Connects as this process's account (`dev_role`'s key on a development network)
    /// and checks it has gas money.
    pub async fn connect(settings: &Settings, dev_role: DevRole) -> eyre::Result<Self> {
        let net = settings.network()?;
        let deployment = Deployment::require(settings.data_dir(), &net.name)?;
        let signer = accounts::service_signer(settings, &net, dev_role)?;
        Self::with_signer(settings, signer, deployment).await
    }

    /// Connects with an explicit key.
    pub async fn with_signer(
        settings: &Settings,
        signer: PrivateKeySigner,
        deployment: Deployment,
    ) -> eyre::Result<Self> {
        let net = settings.network()?;
        let chain = chain::connect(&net, signer.clone()).await?;
        chain.require_gas_money().await?;
        Ok(Self { chain, signer, deployment })
    }

    /// The solver named by `flag`, else by `services.solver`, else the registry's.
    pub async fn solver(&self, settings: &Settings, flag: Option<&str>) -> eyre::Result<SolverClient> {
        let configured = flag.or(settings.services.solver.as_deref());
        Ok(discovery::find_solver(&self.chain, &self.deployment.contracts, configured).await?)
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
    let config = DockerConfig {
        allow_network: settings.executor.allow_network,
        pids_limit: settings.executor.pids_limit,
        tmp_mb: settings.executor.tmp_mb,
        capacity,
        labels,
        ..Default::default()
    };
    Ok(DockerExecutor::connect(config, gpus).await?)
}
