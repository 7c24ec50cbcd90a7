//! The solver API from the clients' side (providers, job creators, mediators, the job
//! board): [`SolverApi`] is the seam the roles depend on, [`SolverClient`] its HTTP and
//! WebSocket implementation. Signed posts, deal lookups, result upload and download, and
//! the numbered event stream ([`EventStream`]).

use super::records::{DealRecord, Event, JobOfferRecord, OfferRecord, ResourceOfferRecord, ResultRecord};
use super::{AuthHeaders, SignedJobOffer, SignedResourceOffer};
use crate::clock::now_secs;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// The API error code of a result upload for a deal that already has one.
pub const RESULT_EXISTS: &str = "result_exists";

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

/// Events for one account, in order; [`EventStream::last`] is what to resume from.
pub struct EventStream {
    inner: BoxStream<'static, Result<Event, ClientError>>,
    last: u64,
}

impl EventStream {
    /// A stream of the events after `since`.
    pub fn new(events: impl Stream<Item = Result<Event, ClientError>> + Send + 'static, since: u64) -> Self {
        Self { inner: events.boxed(), last: since }
    }

    /// The next event, or `None` when the solver closed the stream.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        let next = self.inner.next().await;
        if let Some(Ok(e)) = &next {
            self.last = e.seq;
        }
        next
    }

    /// The sequence number of the last event received.
    pub fn last(&self) -> u64 {
        self.last
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
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
    #[serde(default)]
    sha256: Option<B256>,
}

/// The sha256 in an earlier solver's "deal … already has a result (sha256 0x…)" sentence.
fn legacy_result_sha(message: &str) -> Option<B256> {
    let (_, rest) = message.split_once("already has a result (sha256 ")?;
    rest.get(..66)?.parse().ok()
}

impl SolverClient {
    /// Connects to the solver at `base` (`http://host:port`) and reads its info.
    pub async fn connect(base: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Unreachable { url: base.clone(), reason: e.to_string() })?;
        let unknown = SolverInfo {
            solver: Address::ZERO,
            chain_id: 0,
            deals_contract: Address::ZERO,
            offer_max_ahead_secs: 0,
            max_result_bytes: None,
        };
        let mut client = Self { base, http, info: unknown };
        client.info = client.get_json("/api/v1/info").await?;
        Ok(client)
    }

    /// The signing domain of offers and requests at this solver.
    pub fn domain(&self) -> Eip712Domain {
        self.info.domain()
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() }
    }

    async fn answer<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(ErrorBody { error, sha256: Some(sha256), .. }) if error == RESULT_EXISTS => {
                    ClientError::ResultExists { sha256 }
                }
                // Solvers before `result_exists` said so in a `conflict` sentence.
                Ok(b) if b.error == "conflict" && legacy_result_sha(&b.message).is_some() => {
                    ClientError::ResultExists { sha256: legacy_result_sha(&b.message).unwrap_or_default() }
                }
                Ok(b) => ClientError::Refused { status: status.as_u16(), code: b.error, message: b.message },
                Err(_) => ClientError::Refused {
                    status: status.as_u16(),
                    code: "unknown".into(),
                    message: String::from_utf8_lossy(&bytes).into_owned(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn post_json<B: serde::Serialize + Sync, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp =
            self.http.post(format!("{}{path}", self.base)).json(body).send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn signed(
        &self,
        signer: &PrivateKeySigner,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let auth = AuthHeaders::sign(signer, method.as_str(), path, now_secs() + 60, &self.domain()).await?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in auth.to_pairs() {
            req = req.header(k, v);
        }
        Ok(req)
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
        let resp =
            self.signed(signer, reqwest::Method::DELETE, &path).await?.send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn deal(&self, id: B256) -> Result<DealRecord, ClientError> {
        self.get_json(&format!("/api/v1/deals/{id}")).await
    }

    async fn refuse_deal(&self, signer: &PrivateKeySigner, id: B256, reason: &str) -> Result<DealRecord, ClientError> {
        let path = format!("/api/v1/deals/{id}/refusal");
        let resp = self
            .signed(signer, reqwest::Method::POST, &path)
            .await?
            .json(&serde_json::json!({ "reason": reason }))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
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
        let file = tokio::fs::File::open(bundle)
            .await
            .map_err(|source| ClientError::Io { what: format!("opening {}", bundle.display()), source })?;
        let len = file.metadata().await.map(|m| m.len()).ok();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let mut req = self.signed(signer, reqwest::Method::PUT, &path).await?.body(body);
        if let Some(len) = len {
            req = req.header(reqwest::header::CONTENT_LENGTH, len);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn download_result(&self, signer: &PrivateKeySigner, id: B256, dest: &Path) -> Result<B256, ClientError> {
        let path = format!("/api/v1/deals/{id}/result");
        let resp =
            self.signed(signer, reqwest::Method::GET, &path).await?.send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return match self.answer::<serde_json::Value>(resp).await {
                Err(e) => Err(e),
                Ok(_) => Err(ClientError::Decode("a failure status with a success body".into())),
            };
        }
        let io = |source| ClientError::Io { what: format!("writing {}", dest.display()), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.unreachable(e))?;
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(B256::from_slice(&hasher.finalize()))
    }

    async fn events(&self, address: Address, since: u64) -> Result<EventStream, ClientError> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let url = format!("{ws_base}/api/v1/events?address={address}&since={since}");
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| self.unreachable(e))?;
        let base = self.base.clone();
        let events = futures_util::stream::unfold(ws, move |mut ws| {
            let base = base.clone();
            async move {
                loop {
                    let item = match ws.next().await? {
                        Ok(Message::Text(text)) => {
                            serde_json::from_str::<Event>(&text).map_err(|e| ClientError::Decode(e.to_string()))
                        }
                        Ok(Message::Close(_)) => return None,
                        Ok(_) => continue,
                        Err(e) => Err(ClientError::Unreachable { url: base, reason: e.to_string() }),
                    };
                    return Some((item, ws));
                }
            }
        });
        Ok(EventStream::new(events, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_solvers_conflict_sentence_still_names_the_result() {
        let sha = B256::repeat_byte(0xab);
        let old = format!("deal 0x01 already has a result (sha256 {sha}): results are not replaced");
        assert_eq!(legacy_result_sha(&old), Some(sha));
        assert_eq!(legacy_result_sha("deal 0x01 is expired: no result is taken now"), None);
    }
}
