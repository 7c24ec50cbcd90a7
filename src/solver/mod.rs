//! `dcn solver`: a server that takes signed offers, matches them into deals, relays result
//! bundles and tells every client what happened to its offers.
//!
//! Parts: [`config`] (resolved from the settings), [`matcher`] (who serves whom, pure),
//! [`core`] (the state machine over the [`store`]), [`api`] (axum routes), [`chain`] (deal
//! states followed on chain). What it stores and answers with is the shared protocol's
//! (`protocol::records`). Start at [`Solver::start`].

pub mod api;
pub mod chain;
pub mod config;
pub mod core;
pub mod escrow;
mod maps;
pub mod matcher;
pub mod store;

pub use self::core::{Core, CoreConfig, SolverError};
pub use config::{SolverConfig, SolverOverrides};

use crate::clock::now_ms;
use crate::runtime::Tasks;
use api::{sweep_results, ApiLimits, AppState, Metrics, RateLimiter, ResultSpace, Shared, Subscribers};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often offers are expired and lapsed deals released.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(500);

/// Everything a solver server needs but the chain.
pub struct SolverParams {
    /// Identity and policy.
    pub core: CoreConfig,
    /// API limits.
    pub limits: ApiLimits,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where result bundles go.
    pub results_dir: PathBuf,
    /// Where offers' escrow is read (THREATS V2).
    pub escrow: Arc<dyn escrow::EscrowSource>,
    /// How long a free escrow read is used.
    pub escrow_ttl: Duration,
    /// Where a deal's state is read when a request about it arrives before the chain
    /// follower saw the block that made it possible (`None`: wait for the follower).
    pub chain: Option<Arc<dyn crate::chain::DealsChain>>,
    /// The hash of block 0 of the chain it follows, published in `/api/v1/info` so that a
    /// client on another chain with the same id finds out (`None`: a solver without a
    /// chain, in tests and benches).
    pub genesis_hash: Option<alloy::primitives::B256>,
}

/// A running solver server.
pub struct Solver {
    /// The shared state (tests and the chain follower use it).
    pub state: AppState,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Why a solver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store did not open or load.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The results directory could not be made or swept.
    #[error("cannot create or sweep the results directory {path}: {source}")]
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
    /// Loads the state and serves on `listener` as the tasks `solver/http`,
    /// `solver/housekeeping` and `solver/escrow`, until the tasks' token is cancelled.
    pub fn start(params: SolverParams, listener: TcpListener, tasks: &Tasks) -> Result<Self, StartError> {
        std::fs::create_dir_all(&params.results_dir)
            .map_err(|source| StartError::ResultsDir { path: params.results_dir.clone(), source })?;
        let (events, _) = broadcast::channel(4096);
        let stopping = tasks.token().clone();
        let core = Core::open(params.core, params.store.clone(), events.clone())?;
        let kept = sweep_results(&params.results_dir, &core.held_results())
            .map_err(|source| StartError::ResultsDir { path: params.results_dir.clone(), source })?;
        let state = AppState(Arc::new(Shared {
            core: Mutex::new(core),
            store: params.store,
            events,
            rate: RateLimiter::new(params.limits.rate_per_sec, params.limits.rate_burst, "account"),
            client_rate: RateLimiter::new(params.limits.ip_rate_per_sec, params.limits.ip_rate_burst, "address"),
            results_space: ResultSpace::new(params.limits.max_stored_result_bytes, kept),
            subscribers: Subscribers::new(params.limits.max_subscriptions, params.limits.max_subscriptions_per_address),
            limits: params.limits,
            metrics: Metrics::default(),
            results_dir: params.results_dir,
            started: Instant::now(),
            stopping: stopping.clone(),
            escrow: Arc::new(escrow::EscrowBook::new(params.escrow, params.escrow_ttl)),
            chain: params.chain,
            early_reads: Default::default(),
            fault_checks: Default::default(),
            genesis_hash: params.genesis_hash,
        }));
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        let shutdown = async move { stopping.cancelled().await };
        tasks.spawn_service("solver/http", api::serve(listener, state.clone(), shutdown));
        tasks.spawn_service("solver/housekeeping", housekeeping(state.clone(), tasks.token().clone()));
        tasks.spawn_service("solver/escrow", escrow::watch(state.clone(), tasks.token().clone()));
        Ok(Self { state, addr })
    }

    /// The base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Records that leave memory between two hand-backs of freed memory to the system.
const RELEASE_AFTER_CHANGES: usize = 10_000;

/// Hands the memory freed by records that left memory back to the system: glibc keeps
/// freed memory in its arenas, so without this the solver's resident size would stay at
/// its peak after a flood of offers expired (THREATS V3).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Caps glibc's malloc arenas at two for the process (unless `MALLOC_ARENA_MAX` says
/// otherwise). By default each thread that meets contention gets an arena of its own, and
/// memory freed into those after a burst stays resident whatever `malloc_trim` does: after
/// 100,000 offers posted and expired the solver kept 163 MB with the default and 72 MB
/// with two arenas, at the same latency under a flood (THREATS V3). `main` calls it
/// before the runtime starts any thread.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt takes two integers; it only changes the allocator's policy.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Forgets results past their retention and deletes the bundles no result names any more,
/// giving their room back to the quota; returns how many bundles went. A file is deleted
/// only once the forgetting is durable; until then the core marks its bundle, and an
/// upload of the same bytes is asked to come again (the upload checks the mark and that
/// its file is there under the core's lock).
async fn expire_results(state: &AppState, now_ms: u64) -> Result<usize, SolverError> {
    let gone = state.write(|core| core.expire_results(now_ms)).await?;
    for (sha, size) in &gone {
        let path = state.0.results_dir.join(api::bundle_name(sha));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot delete a result bundle"),
        }
        state.0.results_space.release(*size);
    }
    if !gone.is_empty() {
        state.core().bundles_deleted(gone.iter().map(|(sha, _)| *sha));
        tracing::info!(bundles = gone.len(), "deleted result bundles past their retention");
    }
    Ok(gone.len())
}

async fn housekeeping(state: AppState, token: CancellationToken) -> Result<(), std::convert::Infallible> {
    let (mut last_prune, mut last_forget) = (Instant::now(), Instant::now());
    let mut changed_since_release = 0;
    loop {
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
        }
        let now = now_ms();
        let mut changed = 0;
        match state.write(|core| core.housekeeping(now)).await {
            Ok(n) => changed += n,
            Err(e) => tracing::error!(error = %e, "housekeeping failed"),
        }
        match expire_results(&state, now).await {
            Ok(n) => changed += n,
            Err(e) => tracing::error!(error = %e, "forgetting results past their retention failed"),
        }
        changed_since_release += changed;
        // Every so many records, and when a burst of them is over.
        if changed_since_release >= RELEASE_AFTER_CHANGES || (changed == 0 && changed_since_release > 0) {
            changed_since_release = 0;
            // Records written by now leave the overlay first (when the lock is let go), and
            // maps a burst left empty give their room back.
            state.core().shrink_maps();
            release_freed_memory();
        }
        if last_forget.elapsed() > Duration::from_secs(10) {
            last_forget = Instant::now();
            state.0.rate.forget_idle();
            state.0.client_rate.forget_idle();
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            last_prune = Instant::now();
            // The store prunes on its own: nothing the core holds changes.
            let store = state.0.store.clone();
            let pruned = tokio::task::spawn_blocking(move || store.prune_nonces(now / 1000)).await;
            match pruned.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())) {
                Ok(n) if n > 0 => tracing::debug!(n, "forgot expired nonces"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning nonces failed"),
            }
        }
    }
}
