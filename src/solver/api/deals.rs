//! Deals: list and get (public, as on chain), the provider's signature, and the result
//! bundle: uploaded by the deal's provider, downloaded by its job creator and mediators.

use super::{parse_id, ApiError, ApiQuery, AppState, Auth, AuthJson, AuthStreamed};
use crate::clock::now_ms;
use crate::protocol::records::{DealRecord, DealStatus, ResultRecord};
use crate::solver::core::DealQuery;
use alloy::primitives::{Bytes, B256};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Query of the deal list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    party: Option<String>,
    state: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Vec<DealRecord>>, ApiError> {
    let q = DealQuery {
        party: p
            .party
            .map(|a| a.parse().map_err(|_| ApiError::bad_param("party", format!("`{a}` is not an address"))))
            .transpose()?,
        state: p
            .state
            .map(|s| {
                DealStatus::parse(&s).ok_or_else(|| ApiError::bad_param("state", format!("`{s}` is not a deal state")))
            })
            .transpose()?,
        after: p.after.unwrap_or(0),
        limit: p.limit.unwrap_or(100).min(super::offers::MAX_LIST),
    };
    Ok(Json(state.core().deals(&q).map_err(crate::solver::SolverError::from)?))
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<DealRecord>, ApiError> {
    let id = parse_id(&id)?;
    let deal = state.core().deal(&id).map_err(crate::solver::SolverError::from)?;
    deal.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no deal {id}")))
}

/// Body of `POST /deals/{id}/signature`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBody {
    signature: Bytes,
}

/// Body of `POST /deals/{id}/refusal`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalBody {
    reason: String,
}

/// The provider refuses a proposed deal and says why (a signed request, its body too).
pub async fn refuse(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AuthJson(auth, body): AuthJson<RefusalBody>,
) -> Result<Json<DealRecord>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.write(|core| core.refuse_deal(id, &auth, &body.reason, now_ms())).await?))
}

/// The provider's signature of a proposed deal: taken only in the form `DcnDeals` takes
/// (THREATS N3: one that recovers but that the contract refuses would let the provider
/// capture jobs nobody can create), so nothing is recorded for any other.
pub async fn sign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::ApiJson(body): super::ApiJson<SignatureBody>,
) -> Result<Json<DealRecord>, ApiError> {
    let id = parse_id(&id)?;
    let signer = crate::protocol::recover_deal_signer(&id, &body.signature)?;
    Ok(Json(state.write(|core| core.sign_deal(id, body.signature, signer, now_ms())).await?))
}

/// Longest an upload's body may go without a byte.
pub const UPLOAD_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
/// The slowest upload taken, bytes per second (on top of [`UPLOAD_IDLE_LIMIT`]).
pub const UPLOAD_MIN_BYTES_PER_SEC: u64 = 1 << 20;

fn result_path(state: &AppState, sha256: &B256) -> std::path::PathBuf {
    state.0.results_dir.join(bundle_name(sha256))
}

/// The file name of the bundle whose sha256 is `sha256`.
pub fn bundle_name(sha256: &B256) -> String {
    format!("{}.tar", hex::encode(sha256))
}

/// At most one read of a deal's state on request per this time.
const EARLY_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest such a read may take.
const EARLY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A provider uploads right after its hash is on chain, often before the chain follower
/// has seen the block that created the deal: for a signed deal of the uploading provider,
/// the chain is read, so the upload is taken at once (and a deal not on chain is still
/// refused, THREATS V4). Anyone can be the provider of a signed deal (a deal nobody
/// creates costs nothing: THREATS N4, N6), so reads are bounded: at most one per deal a
/// second, within the account's and the address's request rates, each cut at 5 s.
async fn seen_on_chain(state: &AppState, id: B256, auth: &crate::protocol::Verified) {
    let Some(chain) = state.0.chain.clone() else { return };
    let waiting = matches!(
        state.core().deal(&id),
        Ok(Some(d)) if d.state == DealStatus::Signed && d.deal.provider == auth.account
    );
    if !waiting {
        return;
    }
    {
        let now = std::time::Instant::now();
        let mut reads = state.0.early_reads.lock().unwrap_or_else(|p| p.into_inner());
        if reads.len() >= 4096 {
            reads.retain(|_, at| now.duration_since(*at) < EARLY_READ_EVERY);
        }
        if reads.get(&id).is_some_and(|at| now.duration_since(*at) < EARLY_READ_EVERY) {
            return;
        }
        reads.insert(id, now);
    }
    match tokio::time::timeout(EARLY_READ_TIMEOUT, state.refresh_deal(chain.as_ref(), id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(deal = %id, error = %e, "cannot read the deal's state on chain for an early upload")
        }
        Err(_) => tracing::debug!(deal = %id, "the deal's state on chain took too long to read for an early upload"),
    }
}

/// The provider's result upload (THREATS V4): only for a deal on chain, by its provider,
/// once, one at a time; the nonce is spent and the room reserved before the body streams,
/// and a body other than the signed one is never kept.
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    AuthStreamed(auth): AuthStreamed,
    body: Body,
) -> Result<(StatusCode, Json<ResultRecord>), ApiError> {
    let id = parse_id(&id)?;
    let limit = state.0.limits.max_result_bytes;
    seen_on_chain(&state, id, &auth).await;
    state.write(|core| core.begin_upload(id, &auth, now_ms())).await?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let reservation = state.0.results_space.reserve(id, declared.unwrap_or(limit))?;
    // A body longer than it said is cut where it said.
    let limit = declared.unwrap_or(limit);
    let io = |e: std::io::Error| ApiError::internal(format!("cannot store the result: {e}"));
    let tmp_dir = state.0.results_dir.join("incoming");
    tokio::fs::create_dir_all(&tmp_dir).await.map_err(io)?;
    let tmp = tmp_dir.join(format!("{}.part", hex::encode(B256::random())));
    // A body that trickles gives its room back too: the whole of it has 30 s plus a second
    // per MiB it declared (or may have).
    let deadline = UPLOAD_IDLE_LIMIT + std::time::Duration::from_secs(limit / UPLOAD_MIN_BYTES_PER_SEC);
    let outcome = async {
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = body.into_data_stream();
        // A body that stops coming gives its reservation back rather than hold it.
        let stalled = || {
            let secs = UPLOAD_IDLE_LIMIT.as_secs();
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "upload_stalled", format!("no bytes for {secs} s: upload again"))
        };
        while let Some(chunk) = tokio::time::timeout(UPLOAD_IDLE_LIMIT, stream.next()).await.map_err(|_| stalled())? {
            let chunk = chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "upload_failed", e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::too_large(limit));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        let sha256 = B256::from_slice(&hasher.finalize());
        if sha256 != auth.body {
            return Err(ApiError::body_mismatch(auth.body, sha256));
        }
        file.sync_all().await.map_err(io)?;
        Ok((sha256, size))
    };
    let outcome = tokio::time::timeout(deadline, outcome).await.unwrap_or_else(|_| {
        let secs = deadline.as_secs();
        Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "upload_stalled", format!("not all here after {secs} s")))
    });
    let (sha256, size) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let dest = result_path(&state, &sha256);
    tokio::fs::rename(&tmp, &dest).await.map_err(io)?;
    let record = ResultRecord { deal: id, sha256, size, uploaded_at: now_ms() };
    // On failure the file stays: another deal may hold the same bundle by now, and one no
    // record names is swept at the next start.
    let (record, new_room) = state
        .write(|core| {
            // Bundles past their retention are deleted after their records are written, and
            // are marked until then: checked under the lock, the file cannot go between
            // here and the record that holds it.
            if core.deleting_bundle(&sha256) || !dest.exists() {
                return Err(crate::solver::SolverError::Busy(format!(
                    "the bundle of deal {id} was removed as it arrived (another deal's copy ended its retention): \
                     upload it again"
                )));
            }
            // Another deal may hold the same bundle: it takes no new room.
            let new_room = !core.holds_bundle(&sha256);
            Ok((core.record_result(&auth, record, now_ms())?, new_room))
        })
        .await?;
    reservation.keep(if new_room { size } else { 0 });
    tracing::info!(deal = %id, size, sha256 = %sha256, "result uploaded");
    Ok((StatusCode::CREATED, Json(record)))
}

pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Auth(auth): Auth,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let record = state.write(|core| core.authorize_download(id, &auth, now_ms())).await?;
    let file = tokio::fs::File::open(result_path(&state, &record.sha256))
        .await
        .map_err(|e| ApiError::internal(format!("the result file of deal {id} is missing: {e}")))?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_LENGTH, record.size.to_string()),
            (header::HeaderName::from_static("x-dcn-sha256"), record.sha256.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
