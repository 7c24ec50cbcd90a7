//! [`ApiError`]: every failure of the API as an HTTP status and a JSON body
//! `{ "error": code, "message": sentence }`, in one place.

use crate::protocol::ProtocolError;
use crate::solver::core::SolverError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API failure: status, machine-readable code, human sentence, and for some codes a
/// field a client acts on (`sha256` of `result_exists`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// The sha256 of an existing result (`result_exists`).
    pub sha256: Option<alloy::primitives::B256>,
    /// Seconds to wait before trying again (`Retry-After`, with 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), sha256: None, retry_after: None }
    }

    /// The route does not exist.
    pub fn no_route(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "no_route", format!("no route {path}: see /api/v1 in the solver docs"))
    }

    /// A request that needs the `x-dcn-*` signature headers came without them.
    pub fn missing_auth() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_auth",
            "this request must be signed: send x-dcn-account, x-dcn-expiry, x-dcn-nonce, x-dcn-body-sha256 and \
             x-dcn-signature",
        )
    }

    /// The body is larger than allowed.
    pub fn too_large(limit: u64) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {limit} bytes"))
    }

    /// An account or a client address sends requests faster than allowed; `wait` is
    /// when its next one is taken.
    pub fn rate_limited(who: &str, per_sec: f64, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("more than {per_sec} requests per second from this {who}: retry in {secs} s"),
            )
        }
    }

    /// The body is not the one the request's signature covers.
    pub fn body_mismatch(signed: alloy::primitives::B256, got: alloy::primitives::B256) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "body_mismatch",
            format!("the body's sha256 is {got}, but the request signed {signed}: sign the body you send"),
        )
    }

    /// A path or query parameter does not parse.
    pub fn bad_param(what: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_parameter", format!("invalid {what}: {reason}"))
    }

    /// Something on the solver's side failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let Some(sha256) = self.sha256 {
            body["sha256"] = serde_json::json!(sha256);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        let status = match e {
            ProtocolError::BadSignature(_) | ProtocolError::WrongSigner { .. } => StatusCode::UNAUTHORIZED,
            ProtocolError::Invalid { .. } | ProtocolError::NonCanonical(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ProtocolError::WrongSolver { .. } | ProtocolError::Expired { .. } | ProtocolError::TooFarAhead { .. } => {
                StatusCode::BAD_REQUEST
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<crate::solver::escrow::EscrowError> for ApiError {
    fn from(e: crate::solver::escrow::EscrowError) -> Self {
        use crate::solver::escrow::EscrowError;
        let message = e.to_string();
        match e {
            EscrowError::Short { .. } => Self::new(StatusCode::PAYMENT_REQUIRED, "escrow_short", message),
            EscrowError::Chain { .. } => {
                tracing::warn!(error = %message, "cannot read escrow from the chain");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "chain_unavailable",
                        "the solver cannot read the chain now: try again shortly",
                    )
                }
            }
        }
    }
}

impl From<SolverError> for ApiError {
    fn from(e: SolverError) -> Self {
        let message = e.to_string();
        match e {
            SolverError::Protocol(p) => p.into(),
            SolverError::NonceReused { .. } => Self::new(StatusCode::CONFLICT, "nonce_reused", message),
            SolverError::TooManyOffers { .. } => Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_offers", message),
            SolverError::Full { .. } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "solver_full", message),
            SolverError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            SolverError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            SolverError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            SolverError::NoFault(_) => Self::new(StatusCode::CONFLICT, "no_provider_fault", message),
            SolverError::Busy(_) => {
                Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message) }
            }
            SolverError::ResultExists { sha256, .. } => Self {
                sha256: Some(sha256),
                ..Self::new(StatusCode::CONFLICT, crate::protocol::client::RESULT_EXISTS, message)
            },
            SolverError::Store(_) => {
                tracing::error!(error = %message, "store failure");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", format!("{message}; retry later"))
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let message = r.body_text();
        match r {
            JsonRejection::JsonDataError(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message),
            JsonRejection::JsonSyntaxError(_) => Self::new(StatusCode::BAD_REQUEST, "malformed_json", message),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with content-type: application/json",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
            }
            other => Self::new(other.status(), "bad_body", message),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_param("query", r.body_text())
    }
}
