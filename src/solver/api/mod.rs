//! The solver's HTTP and WebSocket API (axum), versioned under `/api/v1`. [`router`]
//! builds the app from an [`AppState`]; [`serve`] runs it on a bound listener until a
//! shutdown future resolves, so tests bind `127.0.0.1:0`.
//!
//! Routes: `offers.rs` (resource and job offers), `deals.rs` (deals, signatures, results),
//! `faults.rs` (a job creator's report that a signed deal cannot be created, checked on
//! chain), `events.rs` (the numbered event stream), `ops.rs` (health, metrics, dashboard).

mod deals;
pub mod error;
mod events;
mod faults;
mod limits;
mod offers;
mod ops;

pub use deals::bundle_name;
pub use error::ApiError;
pub use events::Subscribers;
pub use limits::{sweep_results, ApiLimits, RateLimiter, ResultSpace};
pub use ops::Metrics;

use super::core::{Core, SolverError};
use crate::chain::{ChainError, DealsChain};
use crate::clock::now_ms;
use crate::protocol::records::{DealStatus, Event};
use crate::protocol::{body_sha256, AuthHeaders, Verified, EMPTY_BODY};
use crate::solver::store::Store;
use alloy::primitives::B256;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// Everything the handlers share.
pub struct Shared {
    /// The state machine, behind one lock: every change is ordered.
    pub core: Mutex<Core>,
    /// The store, for reads that need no lock (event replay).
    pub store: Arc<dyn Store>,
    /// Durable events, as they happen.
    pub events: broadcast::Sender<Arc<Event>>,
    /// Body sizes, rates and open-offer limits.
    pub limits: ApiLimits,
    /// Requests per second per account, charged once the account's signature is verified.
    pub rate: RateLimiter<alloy::primitives::Address>,
    /// Requests per second per client address, charged before anything else.
    pub client_rate: RateLimiter<std::net::IpAddr>,
    /// Request counts and latencies.
    pub metrics: Metrics,
    /// Where result bundles are kept, by sha256.
    pub results_dir: PathBuf,
    /// The room they take, against `limits.max_stored_result_bytes`.
    pub results_space: limits::ResultSpace,
    /// Open event streams, against `limits.max_subscriptions*`.
    pub subscribers: events::Subscribers,
    /// When the server started.
    pub started: Instant,
    /// Cancelled when the server shuts down: event streams close with a Close frame.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Owners' free escrow, which offers need (THREATS V2).
    pub escrow: Arc<crate::solver::escrow::EscrowBook>,
    /// Deal states read on request ([`AppState::refresh_deal`]); `None`: the follower only.
    pub chain: Option<Arc<dyn crate::chain::DealsChain>>,
    /// When each deal's state was last read on request: at most one read per deal a second.
    pub early_reads: Mutex<std::collections::HashMap<B256, Instant>>,
    /// When each job creator's last failure report was checked on chain: at most one check
    /// per account a second (THREATS N3).
    pub fault_checks: Mutex<std::collections::HashMap<alloy::primitives::Address, Instant>>,
    /// The hash of block 0 of the chain it follows, if known.
    pub genesis_hash: Option<alloy::primitives::B256>,
}

/// The handlers' state: cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl AppState {
    /// Locks the core (a poisoned lock is taken over: the core's state is always
    /// consistent with the store between calls).
    /// A failed write is recovered from first: memory is rebuilt from the store. When the
    /// guard goes, the changes made under it go to the writer.
    pub fn core(&self) -> CoreGuard<'_> {
        let mut core = self.0.core.lock().unwrap_or_else(|p| p.into_inner());
        if core.needs_recovery() {
            core.recover();
        }
        CoreGuard(core)
    }

    /// Makes a change on the core, then waits without the lock until it is durable: what
    /// it returns is only told once it is on disk (THREATS V3: no lock across writes).
    pub async fn write<T>(&self, change: impl FnOnce(&mut Core) -> Result<T, SolverError>) -> Result<T, SolverError> {
        let (out, receipt) = {
            let mut core = self.core();
            let out = change(&mut core);
            (out, core.take_receipt())
        };
        if let Some(receipt) = receipt {
            receipt.durable().await?;
        }
        out
    }

    /// Reads deal `id`'s state from `chain` and records it, if the solver made the deal
    /// and this dcn knows the state. The chain follower calls it for each deal a log
    /// names; a request that arrives before the follower saw its block calls it once. A
    /// deal its provider cancelled after signing it is the provider's fault (THREATS N3).
    pub async fn refresh_deal(&self, chain: &dyn DealsChain, id: B256) -> Result<(), RefreshError> {
        if self.core().deal(&id).map_err(SolverError::from)?.is_none() {
            return Ok(());
        }
        let view = chain.state(id).await?;
        if view.state == crate::chain::DealState::Cancelled {
            self.write(|core| core.chain_cancelled(id, now_ms())).await?;
        } else if let Some(s) = DealStatus::on_chain(view.state) {
            self.write(|core| core.chain_state(id, s, now_ms())).await?;
        }
        Ok(())
    }
}

/// Why a deal's state could not be read from the chain and recorded.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The chain did not answer, or answered with a state this dcn does not know.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The solver could not record it.
    #[error(transparent)]
    Solver(#[from] SolverError),
}

/// The core, locked; its changes are handed to the writer when the lock is let go.
pub struct CoreGuard<'a>(MutexGuard<'a, Core>);

impl std::ops::Deref for CoreGuard<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.0
    }
}

impl std::ops::DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.0
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        self.0.hand_over();
    }
}

/// The whole app.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/info", get(ops::info))
        .route("/api/v1/stats", get(ops::stats))
        .route("/api/v1/resource_offers", post(offers::post_resource).get(offers::list))
        .route("/api/v1/resource_offers/{id}", get(offers::get_offer).delete(offers::cancel))
        .route("/api/v1/job_offers", post(offers::post_job).get(offers::list))
        .route("/api/v1/job_offers/{id}", get(offers::get_offer).delete(offers::cancel))
        .route("/api/v1/deals", get(deals::list))
        .route("/api/v1/deals/{id}", get(deals::get))
        .route("/api/v1/deals/{id}/signature", post(deals::sign))
        .route("/api/v1/deals/{id}/refusal", post(deals::refuse))
        .route("/api/v1/deals/{id}/failure", post(faults::report))
        .route("/api/v1/events", get(events::subscribe))
        .layer(DefaultBodyLimit::max(state.0.limits.max_body_bytes));
    // Result bundles are streamed to disk with their own limit.
    let results = Router::new()
        .route("/api/v1/deals/{id}/result", get(deals::download).put(deals::upload))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/", get(ops::dashboard))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .merge(api)
        .merge(results)
        .fallback(|uri: Uri| async move { ApiError::no_route(uri.path()) })
        .method_not_allowed_fallback(|uri: Uri| async move {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} does not take this method", uri.path()),
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::per_client))
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::track))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Events are small frames sent one at a time: with Nagle's algorithm on, a frame that
    // follows another waits for its acknowledgement, which the client delays by up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON body whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// A query string whose rejections are [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// Checks a signed request's headers against its method and path (before any lock is
/// taken: recovering the signer is the expensive part), then charges the account's rate.
/// Nobody can spend another account's requests: junk signatures naming it, and replays
/// of its used requests, are refused before its bucket is touched (THREATS V1).
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Verified, ApiError> {
    let headers = AuthHeaders::from_headers(&parts.headers)?.ok_or_else(ApiError::missing_auth)?;
    let verifier = state.core().verifier(now_ms(), true);
    let verified = headers.verify(parts.method.as_str(), parts.uri.path(), &verifier)?;
    state.core().check_fresh(&verified)?;
    state.0.rate.check(&verified.account)?;
    Ok(verified)
}

/// A signed request without a body (it signs the sha256 of an empty one).
pub struct Auth(pub Verified);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let verified = authenticate(parts, state).await?;
        if verified.body != EMPTY_BODY {
            return Err(ApiError::body_mismatch(verified.body, EMPTY_BODY));
        }
        Ok(Self(verified))
    }
}

/// A signed request whose body is streamed (a result upload): the handler checks that the
/// body it receives hashes to `Verified::body` before it keeps anything.
pub struct AuthStreamed(pub Verified);

impl FromRequestParts<AppState> for AuthStreamed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(authenticate(parts, state).await?))
    }
}

/// A signed request with a JSON body that its signature covers.
pub struct AuthJson<T>(pub Verified, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AuthJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let verified = authenticate(&parts, state).await?;
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state).await.map_err(
            |e| match e.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(state.0.limits.max_body_bytes as u64),
                status => ApiError::new(status, "bad_body", e.body_text()),
            },
        )?;
        let got = body_sha256(&bytes);
        if got != verified.body {
            return Err(ApiError::body_mismatch(verified.body, got));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(verified, v))
    }
}

/// Parses a 0x-hex id from the path.
pub fn parse_id(raw: &str) -> Result<alloy::primitives::B256, ApiError> {
    raw.parse().map_err(|_| ApiError::bad_param("id", format!("`{raw}` is not a 32-byte 0x-hex id")))
}
