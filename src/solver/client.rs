//! [`SolverClient`]: the solver API from the side of providers, job creators and
//! mediators: signed posts, deal lookups, result upload/download and the event stream.

use super::records::{DealRecord, Event, JobOfferRecord, OfferRecord, ResourceOfferRecord, ResultRecord};
use crate::protocol::{self, AuthHeaders, SignedJobOffer, SignedResourceOffer};
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

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
}

/// A connection to one solver.
#[derive(Debug, Clone)]
pub struct SolverClient {
    base: String,
    http: reqwest::Client,
    /// What the solver said about itself.
    pub info: SolverInfo,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    super::api::now_ms() / 1000
}

impl SolverClient {
    /// Connects to the solver at `base` (`http://host:port`) and reads its info.
    pub async fn connect(base: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Unreachable { url: base.clone(), reason: e.to_string() })?;
        let mut client = Self {
            base,
            http,
            info: SolverInfo {
                solver: Address::ZERO,
                chain_id: 0,
                deals_contract: Address::ZERO,
                offer_max_ahead_secs: 0,
            },
        };
        client.info = client.get_json("/api/v1/info").await?;
        Ok(client)
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The signing domain of offers and requests at this solver.
    pub fn domain(&self) -> Eip712Domain {
        protocol::domain(self.info.chain_id, self.info.deals_contract)
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() }
    }

    async fn answer<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => (b.error, b.message),
                Err(_) => ("unknown".into(), String::from_utf8_lossy(&bytes).into_owned()),
            };
            return Err(ClientError::Refused { status: status.as_u16(), code, message });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp =
            self.http.post(format!("{}{path}", self.base)).json(body).send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    async fn auth(&self, signer: &PrivateKeySigner, method: &str, path: &str) -> Result<AuthHeaders, ClientError> {
        Ok(AuthHeaders::sign(signer, method, path, now_secs() + 60, &self.domain()).await?)
    }

    fn with_auth(mut req: reqwest::RequestBuilder, auth: &AuthHeaders) -> reqwest::RequestBuilder {
        for (k, v) in auth.to_pairs() {
            req = req.header(k, v);
        }
        req
    }

    /// Posts a signed resource offer.
    pub async fn post_resource_offer(&self, offer: &SignedResourceOffer) -> Result<ResourceOfferRecord, ClientError> {
        self.post_json("/api/v1/resource_offers", offer).await
    }

    /// Posts a signed job offer.
    pub async fn post_job_offer(&self, offer: &SignedJobOffer) -> Result<JobOfferRecord, ClientError> {
        self.post_json("/api/v1/job_offers", offer).await
    }

    /// One offer (`resource` picks the kind).
    pub async fn offer(&self, id: B256, resource: bool) -> Result<OfferRecord, ClientError> {
        let kind = if resource { "resource_offers" } else { "job_offers" };
        self.get_json(&format!("/api/v1/{kind}/{id}")).await
    }

    /// Cancels an offer of `signer`'s.
    pub async fn cancel_offer(
        &self,
        signer: &PrivateKeySigner,
        id: B256,
        resource: bool,
    ) -> Result<OfferRecord, ClientError> {
        let kind = if resource { "resource_offers" } else { "job_offers" };
        let path = format!("/api/v1/{kind}/{id}");
        let auth = self.auth(signer, "DELETE", &path).await?;
        let req = Self::with_auth(self.http.delete(format!("{}{path}", self.base)), &auth);
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    /// One deal.
    pub async fn deal(&self, id: B256) -> Result<DealRecord, ClientError> {
        self.get_json(&format!("/api/v1/deals/{id}")).await
    }

    /// Deals `party` is in (all if `None`), after sequence number `after`.
    pub async fn deals(&self, party: Option<Address>, after: u64) -> Result<Vec<DealRecord>, ClientError> {
        let mut path = format!("/api/v1/deals?after={after}&limit=500");
        if let Some(p) = party {
            path.push_str(&format!("&party={p}"));
        }
        self.get_json(&path).await
    }

    /// Signs deal `id` as its provider. The caller checks the terms first.
    pub async fn sign_deal(&self, signer: &PrivateKeySigner, id: B256) -> Result<DealRecord, ClientError> {
        let signature = protocol::sign_digest(signer, &id).await?;
        self.post_json(&format!("/api/v1/deals/{id}/signature"), &serde_json::json!({ "signature": signature })).await
    }

    /// Uploads the result bundle at `bundle` for deal `id`, as its provider.
    pub async fn upload_result(
        &self,
        signer: &PrivateKeySigner,
        id: B256,
        bundle: &Path,
    ) -> Result<ResultRecord, ClientError> {
        let path = format!("/api/v1/deals/{id}/result");
        let auth = self.auth(signer, "PUT", &path).await?;
        let file = tokio::fs::File::open(bundle)
            .await
            .map_err(|source| ClientError::Io { what: format!("opening {}", bundle.display()), source })?;
        let len = file.metadata().await.map(|m| m.len()).ok();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let mut req = Self::with_auth(self.http.put(format!("{}{path}", self.base)), &auth).body(body);
        if let Some(len) = len {
            req = req.header(reqwest::header::CONTENT_LENGTH, len);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        self.answer(resp).await
    }

    /// Downloads deal `id`'s result bundle to `dest` as its job creator or a mediator;
    /// returns the file's sha256.
    pub async fn download_result(&self, signer: &PrivateKeySigner, id: B256, dest: &Path) -> Result<B256, ClientError> {
        let path = format!("/api/v1/deals/{id}/result");
        let auth = self.auth(signer, "GET", &path).await?;
        let resp = Self::with_auth(self.http.get(format!("{}{path}", self.base)), &auth)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.answer::<serde_json::Value>(resp).await.expect_err("a failure status is an error"));
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

    /// Subscribes to the events concerning `address` after sequence number `since`.
    pub async fn events(&self, address: Address, since: u64) -> Result<EventStream, ClientError> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let url = format!("{ws_base}/api/v1/events?address={address}&since={since}");
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        Ok(EventStream { ws, last: since })
    }
}

/// Events for one account, in order; [`EventStream::last`] is what to resume from.
pub struct EventStream {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    last: u64,
}

impl EventStream {
    /// The next event, or `None` when the solver closed the stream.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => {
                    let event: Result<Event, _> = serde_json::from_str(&text);
                    return Some(match event {
                        Ok(e) => {
                            self.last = e.seq;
                            Ok(e)
                        }
                        Err(e) => Err(ClientError::Decode(e.to_string())),
                    });
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(ClientError::Unreachable { url: "events".into(), reason: e.to_string() })),
            }
        }
    }

    /// The sequence number of the last event received.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Closes the stream.
    pub async fn close(mut self) {
        let _ = self.ws.send(Message::Close(None)).await;
    }
}
