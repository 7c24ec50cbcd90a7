//! Operations: `/healthz`, `/metrics` (Prometheus text), `/` (a live dashboard), the
//! `info` and `stats` endpoints, and the middleware that counts requests.

use super::AppState;
use crate::clock::now_ms;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Route template, method and status of a request.
type RouteKey = (String, String, u16);

/// Request counts and latencies by route and status: count and total seconds.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RouteKey, (u64, f64)>>,
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "other".into());
    // Labels are bounded: an attacker's made-up methods are one series.
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            req.method().as_str().to_string()
        }
        _ => "other".to_string(),
    };
    let start = Instant::now();
    let response = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let mut m = state.0.metrics.requests.lock().unwrap_or_else(|p| p.into_inner());
    let entry = m.entry((route, method, response.status().as_u16())).or_default();
    entry.0 += 1;
    entry.1 += secs;
    response
}

pub async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    let seq = state.core().last_event_seq();
    Json(
        serde_json::json!({ "status": "ok", "last_event_seq": seq, "uptime_secs": state.0.started.elapsed().as_secs() }),
    )
}

pub async fn info(State(state): State<AppState>) -> Json<serde_json::Value> {
    let core = state.core();
    let cfg = core.config();
    Json(serde_json::json!({
        "solver": cfg.solver,
        "chain_id": cfg.chain_id,
        "deals_contract": cfg.deals_contract,
        "offer_max_ahead_secs": cfg.offer_max_ahead_secs,
        "request_max_ahead_secs": cfg.request_max_ahead_secs,
        "max_open_offers": cfg.max_open_offers,
        "sign_timeout_secs": cfg.sign_timeout_secs,
        "create_timeout_secs": cfg.create_timeout_secs,
        "max_body_bytes": state.0.limits.max_body_bytes,
        "max_result_bytes": state.0.limits.max_result_bytes,
        "genesis_hash": state.0.genesis_hash,
        "now_ms": now_ms(),
    }))
}

pub async fn stats(State(state): State<AppState>) -> Json<crate::solver::core::Stats> {
    Json(state.core().stats())
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let s = state.core().stats();
    let mut out = String::new();
    let _ =
        writeln!(out, "# HELP dcn_solver_open_offers Offers open for matching.\n# TYPE dcn_solver_open_offers gauge");
    let _ = writeln!(out, "dcn_solver_open_offers{{kind=\"resource\"}} {}", s.open_resource_offers);
    let _ = writeln!(out, "dcn_solver_open_offers{{kind=\"job\"}} {}", s.open_job_offers);
    let _ = writeln!(out, "# HELP dcn_solver_offers Offers by kind and status.\n# TYPE dcn_solver_offers gauge");
    for (key, n) in &s.offers {
        let (kind, status) = key.split_once(':').unwrap_or((key, ""));
        let _ = writeln!(out, "dcn_solver_offers{{kind=\"{kind}\",status=\"{status}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP dcn_solver_deals Deals by state.\n# TYPE dcn_solver_deals gauge");
    for (state_name, n) in &s.deals {
        let _ = writeln!(out, "dcn_solver_deals{{state=\"{state_name}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP dcn_solver_matches_total Matches made.\n# TYPE dcn_solver_matches_total counter");
    let _ = writeln!(out, "dcn_solver_matches_total {}", s.matches_total);
    let _ = writeln!(out, "# HELP dcn_solver_events_total Events in the log.\n# TYPE dcn_solver_events_total counter");
    let _ = writeln!(out, "dcn_solver_events_total {}", s.last_event_seq);
    let requests = state.0.metrics.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let _ = writeln!(
        out,
        "# HELP dcn_solver_http_requests_total HTTP requests.\n# TYPE dcn_solver_http_requests_total counter"
    );
    for ((route, method, status), (n, _)) in &requests {
        let _ = writeln!(
            out,
            "dcn_solver_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP dcn_solver_http_request_seconds Time spent answering.\n# TYPE dcn_solver_http_request_seconds summary"
    );
    for ((route, method, status), (n, secs)) in &requests {
        let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
        let _ = writeln!(out, "dcn_solver_http_request_seconds_sum{{{labels}}} {secs}");
        let _ = writeln!(out, "dcn_solver_http_request_seconds_count{{{labels}}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

pub async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
