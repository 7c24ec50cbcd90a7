//! `dcn solver`: a server that takes signed offers, matches them into deals, relays result
//! bundles and tells every client what happened to its offers.
//!
//! Layers: [`records`] (what is kept), [`matcher`] (who serves whom, pure), [`core`] (the
//! state machine over the store), [`api`] (axum routes), [`chain`] (registry and deal
//! states on chain), [`client`] (the same API from the other side). Start at [`Solver::start`].

pub mod api;
pub mod chain;
pub mod client;
pub mod core;
pub mod matcher;
pub mod records;

use crate::store::{Store, StoreError};
use api::{ApiLimits, AppState, Metrics, RateLimiter, Shared};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use self::core::{Core, CoreConfig, SolverError};
pub use client::SolverClient;

/// How often offers are expired and lapsed deals released.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);

/// Everything a solver needs but the chain.
pub struct SolverParams {
    /// Identity and policy.
    pub core: CoreConfig,
    /// API limits.
    pub limits: ApiLimits,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where result bundles go.
    pub results_dir: PathBuf,
}

/// A running solver server.
pub struct Solver {
    /// The shared state (tests and the chain follower use it).
    pub state: AppState,
    /// Where it listens.
    pub addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    housekeeping: JoinHandle<()>,
}

/// Why a solver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store did not open or load.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The results directory could not be made.
    #[error("cannot create the results directory {path}: {source}")]
    ResultsDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listener has no address.
    #[error("the listener has no local address: {0}")]
    Listener(std::io::Error),
}

impl Solver {
    /// Loads the state and serves on `listener` until `shutdown` resolves.
    pub fn start(
        params: SolverParams,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(&params.results_dir)
            .map_err(|source| StartError::ResultsDir { path: params.results_dir.clone(), source })?;
        let (events, _) = broadcast::channel(4096);
        let stopping = tokio_util::sync::CancellationToken::new();
        let core = Core::open(params.core, params.store.clone(), events.clone())?;
        let state = AppState(Arc::new(Shared {
            core: Mutex::new(core),
            store: params.store,
            events,
            rate: RateLimiter::new(params.limits.rate_per_sec, params.limits.rate_burst),
            limits: params.limits,
            metrics: Metrics::default(),
            results_dir: params.results_dir,
            started: Instant::now(),
            stopping: stopping.clone(),
        }));
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        let shutdown = async move {
            shutdown.await;
            stopping.cancel();
        };
        let server = tokio::spawn(api::serve(listener, state.clone(), shutdown));
        let housekeeping = tokio::spawn(housekeeping(state.clone()));
        Ok(Self { state, addr, server, housekeeping })
    }

    /// The base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the server to stop (after the shutdown future resolved).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.server.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.housekeeping.abort();
        result
    }
}

async fn housekeeping(state: AppState) {
    let mut last_prune = Instant::now();
    loop {
        tokio::time::sleep(HOUSEKEEPING_EVERY).await;
        let now = api::now_ms();
        if let Err(e) = state.core().housekeeping(now) {
            tracing::error!(error = %e, "housekeeping failed");
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            last_prune = Instant::now();
            match state.core().prune_nonces(now) {
                Ok(n) if n > 0 => tracing::debug!(n, "forgot expired nonces"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning nonces failed"),
            }
        }
    }
}
