//! `POST /deals/{id}/failure`: the job creator of a signed deal says it cannot be created by
//! its provider's doing (THREATS N3). The solver never sees a `createDeal` that reverts, so
//! it hears of it from the job creator; but a job creator must not get an honest provider
//! struck by saying so, so its word is never taken: the solver checks the signature it holds
//! against the contract's rule and asks the chain what `createDeal` of the deal, with that
//! signature, from the job creator, would do now. Only a revert by the provider's doing
//! (`BadSignature`, `InsufficientEscrow` of the provider, `DealIsCancelled`) strikes it.
//!
//! Chain reads a stranger can cause are bounded: the request is signed and its nonce spent
//! before any read, only the deal's job creator is heard, a deal already ended with a fault
//! is answered without a read, and each account gets at most one check a second (within
//! its own and its address's request rates), each cut at 5 s.

use super::{parse_id, ApiError, AppState, AuthJson};
use crate::chain::CreateCheck;
use crate::clock::now_ms;
use crate::protocol::records::DealRecord;
use crate::solver::SolverError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// At most one chain check of a report per account per this time.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest a check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Body of `POST /deals/{id}/failure`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBody {
    /// Whether the job creator still waits for its job: the job goes to another provider
    /// (else its offer is closed).
    rematch: bool,
}

fn chain_unavailable(why: &str) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable", format!("{why}: try again shortly"))
    }
}

/// Takes the account's one check of the second, or says when to come back.
fn take_check(state: &AppState, account: alloy::primitives::Address) -> Result<(), ApiError> {
    let now = Instant::now();
    let mut checks = state.0.fault_checks.lock().unwrap_or_else(|p| p.into_inner());
    if checks.len() >= 4096 {
        checks.retain(|_, at| now.duration_since(*at) < CHECK_EVERY);
    }
    if checks.get(&account).is_some_and(|at| now.duration_since(*at) < CHECK_EVERY) {
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this account's last failure report was checked on chain less than a second ago: retry in 1 s",
            )
        });
    }
    checks.insert(account, now);
    Ok(())
}

/// The job creator reports that signed deal `id` cannot be created by its provider's
/// doing. Answers the deal ended with the fault (the provider struck, the job offered to
/// another provider when `rematch`), or `409 no_provider_fault` when the solver finds none.
pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AuthJson(auth, body): AuthJson<FailureBody>,
) -> Result<Json<DealRecord>, ApiError> {
    let id = parse_id(&id)?;
    let deal = state.write(|core| core.begin_failure_report(id, &auth, now_ms())).await?;
    if deal.fault.is_some() {
        return Ok(Json(deal));
    }
    let signature = deal
        .provider_signature
        .clone()
        .ok_or_else(|| ApiError::internal(format!("signed deal {id} has no signature on record")))?;
    let fault = if crate::protocol::check_canonical(&signature).is_err() {
        // Recorded before this solver checked the form: the contract refuses it, no read needed.
        crate::chain::ProviderFault::BadSignature
    } else {
        let chain = state.0.chain.clone().ok_or_else(|| chain_unavailable("this solver does not read the chain"))?;
        take_check(&state, auth.account)?;
        let check = tokio::time::timeout(CHECK_TIMEOUT, chain.check_create(&deal.deal, &signature)).await;
        match check {
            Ok(Ok(CreateCheck::ProviderFault(fault))) => fault,
            Ok(Ok(CreateCheck::Passes)) => {
                return Err(SolverError::NoFault(format!(
                    "the chain says deal {id} can be created now: its provider is not at fault"
                ))
                .into())
            }
            Ok(Ok(CreateCheck::Fails(why))) => {
                return Err(SolverError::NoFault(format!(
                    "the chain says creating deal {id} fails, but not by its provider's doing ({why})"
                ))
                .into())
            }
            Ok(Err(e)) => {
                tracing::warn!(deal = %id, error = %e, "cannot check a failure report on chain");
                return Err(chain_unavailable("the solver cannot read the chain now"));
            }
            Err(_) => return Err(chain_unavailable("the chain took too long to answer")),
        }
    };
    Ok(Json(state.write(|core| core.provider_failed(id, fault, body.rematch, now_ms())).await?))
}
