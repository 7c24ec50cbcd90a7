//! Offers: post (signed by the owner), list, get, cancel (a signed request by the owner).

use super::{parse_id, ApiError, ApiJson, ApiQuery, AppState, Auth};
use crate::clock::now_ms;
use crate::protocol::records::{JobOfferRecord, OfferRecord, OfferStatus, ResourceOfferRecord};
use crate::protocol::{SignedJobOffer, SignedResourceOffer};
use crate::solver::core::OfferQuery;
use crate::solver::escrow::{job_need, resource_need};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde::Deserialize;

/// Query of the offer lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    owner: Option<String>,
    status: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// Most items one list answer holds.
pub const MAX_LIST: usize = 500;

fn offer_query(p: ListParams, resource: bool) -> Result<OfferQuery, ApiError> {
    Ok(OfferQuery {
        resource: Some(resource),
        owner: p
            .owner
            .map(|o| o.parse().map_err(|_| ApiError::bad_param("owner", format!("`{o}` is not an address"))))
            .transpose()?,
        status: p
            .status
            .map(|s| {
                OfferStatus::parse(&s).ok_or_else(|| {
                    ApiError::bad_param("status", format!("`{s}` is not open, matched, cancelled, expired or closed"))
                })
            })
            .transpose()?,
        after: p.after.unwrap_or(0),
        limit: p.limit.unwrap_or(100).min(MAX_LIST),
    })
}

pub async fn post_resource(
    State(state): State<AppState>,
    ApiJson(signed): ApiJson<SignedResourceOffer>,
) -> Result<(StatusCode, Json<ResourceOfferRecord>), ApiError> {
    let now = now_ms();
    let verifier = state.core().verifier(now, false);
    // The signature is checked before the lock: it is the expensive part.
    let id = signed.verify(&verifier)?;
    let provider = signed.offer.provider;
    state.0.rate.check(&provider)?;
    let need = resource_need(&signed.offer, state.core().live_deals_of(&provider));
    state.0.escrow.check(provider, need, "its collateral for each slot its live deals do not hold").await?;
    let record = state.write(|core| core.post_resource_offer(signed, id, now)).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

pub async fn post_job(
    State(state): State<AppState>,
    ApiJson(signed): ApiJson<SignedJobOffer>,
) -> Result<(StatusCode, Json<JobOfferRecord>), ApiError> {
    let now = now_ms();
    let verifier = state.core().verifier(now, false);
    let id = signed.verify(&verifier)?;
    state.0.rate.check(&signed.offer.jobCreator)?;
    state.0.escrow.check(signed.offer.jobCreator, job_need(&signed.offer), "its maximum price").await?;
    let record = state.write(|core| core.post_job_offer(signed, id, now)).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Lists resource or job offers, by the route it is called on.
pub async fn list(
    State(state): State<AppState>,
    uri: Uri,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Vec<OfferRecord>>, ApiError> {
    let q = offer_query(p, is_resource_route(&uri))?;
    Ok(Json(state.core().offers(&q).map_err(crate::solver::SolverError::from)?))
}

fn is_resource_route(uri: &Uri) -> bool {
    uri.path().starts_with("/api/v1/resource_offers")
}

fn kind_matches(uri: &Uri, offer: &OfferRecord) -> bool {
    is_resource_route(uri) == matches!(offer, OfferRecord::Resource(_))
}

pub async fn get_offer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<OfferRecord>, ApiError> {
    let id = parse_id(&id)?;
    let offer = state.core().offer(&id).map_err(crate::solver::SolverError::from)?;
    match offer {
        Some(o) if kind_matches(&uri, &o) => Ok(Json(o)),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no offer {id} here"))),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    Auth(auth): Auth,
) -> Result<Json<OfferRecord>, ApiError> {
    let id = parse_id(&id)?;
    let cancelled = state
        .write(|core| {
            if !core.offer(&id)?.is_some_and(|o| kind_matches(&uri, &o)) {
                return Ok(None);
            }
            core.cancel_offer(id, &auth, now_ms()).map(Some)
        })
        .await?;
    cancelled.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no offer {id} here")))
}
