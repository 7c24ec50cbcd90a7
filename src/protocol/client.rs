//! The solver API from the clients' side (providers, job creators, mediators, the job
//! board): [`SolverApi`] is the seam the roles depend on, [`SolverClient`] its HTTP and
//! WebSocket implementation. Signed posts, deal lookups, result upload and download, and
//! the numbered event stream ([`EventStream`]).
//!
//! The solver is a stranger's server (THREATS V6): every request has a time limit and every
//! answer a size limit, and a busy or failing solver (429, 5xx, no answer) is asked again
//! a few times with exponential backoff and jitter, honouring `Retry-After`, before the
//! error goes to the caller, whose own deadlines decide what follows (`transfer.rs`); a
//! client of a stopping process asks once ([`SolverClient::retrying_until`]).

pub use super::event_stream::EventStream;
use super::records::{DealRecord, JobOfferRecord, OfferRecord, ResourceOfferRecord, ResultRecord};
use super::transfer::{file_sha256, legacy_result_sha, read_capped, transfer_timeout, with_retries};
use super::{body_sha256, AuthHeaders, SignedJobOffer, SignedResourceOffer, EMPTY_BODY};
use crate::clock::now_secs;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The API error code of a result upload for a deal that already has one.
pub const RESULT_EXISTS: &str = "result_exists";

/// Longest a request without a bundle may take, connection to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next bytes of any answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest JSON answer read.
pub const MAX_ANSWER_BYTES: u64 = 16 << 20;
/// An event stream silent this long (the solver pings every 20 s) is taken for dead.
pub const EVENT_SILENCE_LIMIT: Duration = Duration::from_secs(90);
/// Largest event message taken from the event stream.
pub const MAX_EVENT_BYTES: usize = 4 << 20;
/// Largest result bundle downloaded from any solver.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 1 << 30;
/// The slowest transfer a bundle upload or download is given time for, bytes per second
/// (on top of [`REQUEST_TIMEOUT`]).
pub const MIN_TRANSFER_BYTES_PER_SEC: u64 = 1 << 20;
/// Attempts of one request when the solver is busy (429), failing (5xx) or silent.
pub const ATTEMPTS: usize = 5;
/// The longest wait between attempts; a 429 asking for longer goes to the caller.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(8);

/// What went wrong talking to a solver.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer at the URL.
    #[error("cannot reach the solver at {url}: {reason} (is `dcn solver` running there?)")]
    Unreachable {
        /// The solver URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The solver refused the request.
    #[error("the solver refused: {message} ({status} {code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The API error code.
        code: String,
        /// The API's sentence.
        message: String,
        /// Seconds the solver asked to wait before trying again (`Retry-After`).
        retry_after: Option<u64>,
    },
    /// The deal already has a result at the solver (results are never replaced).
    #[error("the solver already holds a result for this deal (sha256 {sha256})")]
    ResultExists {
        /// The sha256 of the bundle it holds.
        sha256: B256,
    },
    /// An answer that does not decode.
    #[error("the solver's answer does not decode: {0}")]
    Decode(String),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
}

impl ClientError {
    /// Whether the solver answered "not found" (no such offer or deal, or no result yet).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: 404, .. })
    }

    /// Whether asking again soon may succeed: the solver was busy (429 with `Retry-After`;
    /// other 429s, such as too many open offers, wait on the caller), failed (5xx) or did
    /// not answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Refused { status: 429, retry_after: Some(_), .. }
                | Self::Refused { status: 500..=599, .. }
        )
    }

    /// How long the solver asked to wait (`Retry-After`).
    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after: Some(secs), .. } => Some(Duration::from_secs(*secs)),
            _ => None,
        }
    }
}

/// What `GET /api/v1/info` says about a solver.
#[derive(Debug, Clone, Deserialize)]
pub struct SolverInfo {
    /// The solver's address: offers must name it.
    pub solver: Address,
    /// The chain id of its deployment.
    pub chain_id: u64,
    /// The `DcnDeals` contract.
    pub deals_contract: Address,
    /// Largest accepted offer expiry ahead of now, seconds.
    pub offer_max_ahead_secs: u64,
    /// Largest result bundle it takes, bytes (unknown from solvers that do not say).
    #[serde(default)]
    pub max_result_bytes: Option<u64>,
    /// The hash of block 0 of the chain it follows: a client whose node has another is on
    /// another chain with the same id (a restarted development chain). Unknown from
    /// solvers that do not say.
    #[serde(default)]
    pub genesis_hash: Option<B256>,
}

impl SolverInfo {
    /// The signing domain of offers and requests at this solver.
    pub fn domain(&self) -> Eip712Domain {
        super::domain(self.chain_id, self.deals_contract)
    }
}

/// Which kind of offer an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    /// A provider's resource offer.
    Resource,
    /// A job creator's job offer.
    Job,
}

impl OfferKind {
    fn route(self) -> &'static str {
        match self {
            Self::Resource => "resource_offers",
            Self::Job => "job_offers",
        }
    }
}

/// The solver API, in the verbs its clients use.
#[async_trait]
pub trait SolverApi: Send + Sync {
    /// What the solver said about itself.
    fn info(&self) -> &SolverInfo;
    /// Its base URL.
    fn url(&self) -> &str;
    /// Posts a signed resource offer.
    async fn post_resource_offer(&self, offer: &SignedResourceOffer) -> Result<ResourceOfferRecord, ClientError>;
    /// Posts a signed job offer.
    async fn post_job_offer(&self, offer: &SignedJobOffer) -> Result<JobOfferRecord, ClientError>;
    /// One offer.
    async fn offer(&self, id: B256, kind: OfferKind) -> Result<OfferRecord, ClientError>;
    /// Cancels an offer of `signer`'s.
    async fn cancel_offer(
        &self,
        signer: &PrivateKeySigner,
        id: B256,
        kind: OfferKind,
    ) -> Result<OfferRecord, ClientError>;
    /// One deal.
    async fn deal(&self, id: B256) -> Result<DealRecord, ClientError>;
    /// Signs deal `id` as its provider. The caller checks the terms first.
    async fn sign_deal(&self, signer: &PrivateKeySigner, id: B256) -> Result<DealRecord, ClientError>;
    /// Refuses proposed deal `id` as its provider, saying why: the solver ends it at once
    /// and keeps the reason on its record.
    async fn refuse_deal(&self, signer: &PrivateKeySigner, id: B256, reason: &str) -> Result<DealRecord, ClientError>;
    /// Reports, as its job creator, that signed deal `id` cannot be created by its
    /// provider's doing; `rematch`: the job creator still waits for the job. The solver
    /// checks it on chain and answers the deal ended with the fault (the provider struck).
    async fn report_failure(&self, key: &PrivateKeySigner, id: B256, rematch: bool) -> Result<DealRecord, ClientError>;
    /// Uploads the result bundle at `bundle` for deal `id`, as its provider.
    async fn upload_result(
        &self,
        signer: &PrivateKeySigner,
        id: B256,
        bundle: &Path,
    ) -> Result<ResultRecord, ClientError>;
    /// Downloads deal `id`'s result bundle to `dest` as its job creator or a mediator;
    /// returns the file's sha256.
    async fn download_result(&self, signer: &PrivateKeySigner, id: B256, dest: &Path) -> Result<B256, ClientError>;
    /// Subscribes to the events concerning `address` after sequence number `since`.
    async fn events(&self, address: Address, since: u64) -> Result<EventStream, ClientError>;
}

/// A connection to one solver over HTTP and WebSocket.
#[derive(Debug, Clone)]
pub struct SolverClient {
    base: String,
    http: reqwest::Client,
    info: SolverInfo,
    /// Once cancelled, no request is retried.
    stop: CancellationToken,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
    #[serde(default)]
    sha256: Option<B256>,
}

impl SolverClient {
    /// Connects to the solver at `base` (`http://host:port`) and reads its info.
    pub async fn connect(base: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Unreachable { url: base.clone(), reason: e.to_string() })?;
        let unknown = SolverInfo {
            solver: Address::ZERO,
            chain_id: 0,
            deals_contract: Address::ZERO,
            offer_max_ahead_secs: 0,
            max_result_bytes: None,
            genesis_hash: None,
        };
        let mut client = Self { base, http, info: unknown, stop: CancellationToken::new() };
        // One attempt: a wrong URL is said at once; services that need the solver retry.
        client.info = client.get_once("/api/v1/info").await?;
        Ok(client)
    }

    /// The signing domain of offers and requests at this solver.
    pub fn domain(&self) -> Eip712Domain {
        self.info.domain()
    }

    /// This client, retrying no request once `stop` is cancelled: a service that stops
    /// says goodbye to its solver (cancels its offer) once, and waits on no backoff.
    pub fn retrying_until(mut self, stop: &CancellationToken) -> Self {
        self.stop = stop.clone();
        self
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() }
    }

    async fn answer<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let retry_after =
            resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let bytes = read_capped(resp, MAX_ANSWER_BYTES, &self.base).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(ErrorBody { error, sha256: Some(sha256), .. }) if error == RESULT_EXISTS => {
                    ClientError::ResultExists { sha256 }
                }
                // Solvers before `result_exists` said so in a `conflict` sentence.
                Ok(b) if b.error == "conflict" && legacy_result_sha(&b.message).is_some() => {
                    ClientError::ResultExists { sha256: legacy_result_sha(&b.message).unwrap_or_default() }
                }
                Ok(b) => {
                    ClientError::Refused { status: status.as_u16(), code: b.error, message: b.message, retry_after }
                }
                Err(_) => ClientError::Refused {
                    status: status.as_u16(),
                    code: "unknown".into(),
                    message: String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned(),
                    retry_after,
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = req.timeout(REQUEST_TIMEOUT).send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn get_once<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        with_retries(path, &self.stop, || self.get_once(path)).await
    }

    async fn post_json<B: serde::Serialize + Sync, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        with_retries(path, &self.stop, || self.send(self.http.post(format!("{}{path}", self.base)).json(body))).await
    }

    /// A request signed by `signer` for `method` `path` with a body whose sha256 is `body`
    /// (a fresh signature and nonce each time: every attempt is a new request).
    async fn signed(
        &self,
        signer: &PrivateKeySigner,
        method: reqwest::Method,
        path: &str,
        body: B256,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let auth = AuthHeaders::sign(signer, method.as_str(), path, body, now_secs() + 60, &self.domain()).await?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in auth.to_pairs() {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// POSTs `body` as JSON in a request signed by `signer`, its body too (each attempt
    /// signed afresh).
    async fn post_signed<B: serde::Serialize + Sync, T: DeserializeOwned>(
        &self,
        signer: &PrivateKeySigner,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body =
            serde_json::to_vec(body).map_err(|e| ClientError::Decode(format!("the body does not encode: {e}")))?;
        let sha256 = body_sha256(&body);
        with_retries(path, &self.stop, || async {
            let req = self.signed(signer, reqwest::Method::POST, path, sha256).await?;
            self.send(req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone())).await
        })
        .await
    }

    /// The largest bundle taken from this solver: what it says it holds at most, and never
    /// more than [`DEFAULT_MAX_DOWNLOAD_BYTES`] whatever it says.
    fn max_download_bytes(&self) -> u64 {
        self.info.max_result_bytes.unwrap_or(DEFAULT_MAX_DOWNLOAD_BYTES).min(DEFAULT_MAX_DOWNLOAD_BYTES)
    }

    async fn download_once(&self, signer: &PrivateKeySigner, path: &str, dest: &Path) -> Result<B256, ClientError> {
        let cap = self.max_download_bytes();
        let over = || ClientError::Decode(format!("the bundle is over the solver's own limit of {cap} bytes"));
        let req = self.signed(signer, reqwest::Method::GET, path, EMPTY_BODY).await?;
        let resp = req.timeout(transfer_timeout(cap)).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return match self.answer::<serde_json::Value>(resp).await {
                Err(e) => Err(e),
                Ok(_) => Err(ClientError::Decode("a failure status with a success body".into())),
            };
        }
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(over());
        }
        let io = |source| ClientError::Io { what: format!("writing {}", dest.display()), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(e))?;
            size += chunk.len() as u64;
            if size > cap {
                return Err(over());
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(B256::from_slice(&hasher.finalize()))
    }

    async fn upload_once(
        &self,
        signer: &PrivateKeySigner,
        path: &str,
        bundle: &Path,
        sha256: B256,
    ) -> Result<ResultRecord, ClientError> {
        let io = |source| ClientError::Io { what: format!("reading {}", bundle.display()), source };
        let file = tokio::fs::File::open(bundle).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let req = self.signed(signer, reqwest::Method::PUT, path, sha256).await?;
        let req = req.body(body).header(reqwest::header::CONTENT_LENGTH, len).timeout(transfer_timeout(len));
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    /// Deals `party` is in (all if `None`), after sequence number `after`.
    pub async fn deals(&self, party: Option<Address>, after: u64) -> Result<Vec<DealRecord>, ClientError> {
        let mut path = format!("/api/v1/deals?after={after}&limit=500");
        if let Some(p) = party {
            path.push_str(&format!("&party={p}"));
        }
        self.get_json(&path).await
    }
}

#[async_trait]
impl SolverApi for SolverClient {
    fn info(&self) -> &SolverInfo {
        &self.info
    }

    fn url(&self) -> &str {
        &self.base
    }

    async fn post_resource_offer(&self, offer: &SignedResourceOffer) -> Result<ResourceOfferRecord, ClientError> {
        self.post_json("/api/v1/resource_offers", offer).await
    }

    async fn post_job_offer(&self, offer: &SignedJobOffer) -> Result<JobOfferRecord, ClientError> {
        self.post_json("/api/v1/job_offers", offer).await
    }

    async fn offer(&self, id: B256, kind: OfferKind) -> Result<OfferRecord, ClientError> {
        self.get_json(&format!("/api/v1/{}/{id}", kind.route())).await
    }

    async fn cancel_offer(
        &self,
        signer: &PrivateKeySigner,
        id: B256,
        kind: OfferKind,
    ) -> Result<OfferRecord, ClientError> {
        let path = format!("/api/v1/{}/{id}", kind.route());
        with_retries(&path, &self.stop, || async {
            self.send(self.signed(signer, reqwest::Method::DELETE, &path, EMPTY_BODY).await?).await
        })
        .await
    }

    async fn deal(&self, id: B256) -> Result<DealRecord, ClientError> {
        self.get_json(&format!("/api/v1/deals/{id}")).await
    }

    async fn refuse_deal(&self, signer: &PrivateKeySigner, id: B256, reason: &str) -> Result<DealRecord, ClientError> {
        self.post_signed(signer, &format!("/api/v1/deals/{id}/refusal"), &serde_json::json!({ "reason": reason })).await
    }

    async fn report_failure(&self, key: &PrivateKeySigner, id: B256, rematch: bool) -> Result<DealRecord, ClientError> {
        self.post_signed(key, &format!("/api/v1/deals/{id}/failure"), &serde_json::json!({ "rematch": rematch })).await
    }

    async fn sign_deal(&self, signer: &PrivateKeySigner, id: B256) -> Result<DealRecord, ClientError> {
        let signature = super::sign_digest(signer, &id).await?;
        self.post_json(&format!("/api/v1/deals/{id}/signature"), &serde_json::json!({ "signature": signature })).await
    }

    async fn upload_result(
        &self,
        signer: &PrivateKeySigner,
        id: B256,
        bundle: &Path,
    ) -> Result<ResultRecord, ClientError> {
        let path = format!("/api/v1/deals/{id}/result");
        let sha256 = file_sha256(bundle).await?;
        with_retries(&path, &self.stop, || self.upload_once(signer, &path, bundle, sha256)).await
    }

    async fn download_result(&self, signer: &PrivateKeySigner, id: B256, dest: &Path) -> Result<B256, ClientError> {
        let path = format!("/api/v1/deals/{id}/result");
        with_retries(&path, &self.stop, || self.download_once(signer, &path, dest)).await
    }

    async fn events(&self, address: Address, since: u64) -> Result<EventStream, ClientError> {
        super::event_stream::subscribe(&self.base, address, since).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_solvers_info_without_its_chains_first_block_still_reads() {
        let info = serde_json::json!({
            "solver": Address::repeat_byte(1),
            "chain_id": 1337,
            "deals_contract": Address::repeat_byte(2),
            "offer_max_ahead_secs": 3600,
        });
        let info: SolverInfo = serde_json::from_value(info).unwrap();
        assert_eq!((info.chain_id, info.genesis_hash), (1337, None), "taken on its word: no chain check");
    }
}
