//! `GET /api/v1/events?address=0x…&since=N`: a WebSocket of the events concerning one
//! account, as JSON text messages, in sequence order. Everything after `since` is replayed
//! from the store first, then live events follow; a client that reconnects with the last
//! sequence number it saw misses nothing and sees nothing twice. Events carry only what
//! the public lists show, so subscribing needs no signature.

use super::{ApiError, ApiQuery, AppState};
use crate::protocol::records::Event;
use alloy::primitives::Address;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

/// Query of the subscription.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    address: String,
    since: Option<u64>,
}

const REPLAY_PAGE: usize = 1000;

pub async fn subscribe(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SubscribeParams>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let address: Address =
        p.address.parse().map_err(|_| ApiError::bad_param("address", format!("`{}` is not an address", p.address)))?;
    let since = p.since.unwrap_or(0);
    Ok(ws.on_upgrade(move |socket| stream(state, socket, address, since)))
}

async fn send(socket: &mut WebSocket, event: &Event) -> bool {
    let text = serde_json::to_string(event).expect("events serialize");
    socket.send(Message::Text(text.into())).await.is_ok()
}

/// Sends the stored events after `last`; returns the new last, or `None` if the client left.
async fn replay(state: &AppState, socket: &mut WebSocket, address: Address, mut last: u64) -> Option<u64> {
    loop {
        let page = match state.0.store.events_for(address, last, REPLAY_PAGE) {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log");
                return None;
            }
        };
        for e in &page {
            if !send(socket, e).await {
                return None;
            }
            last = e.seq;
        }
        if page.len() < REPLAY_PAGE {
            return Some(last);
        }
    }
}

async fn stream(state: AppState, mut socket: WebSocket, address: Address, since: u64) {
    // Subscribe before replaying: an event written meanwhile is in both, and is sent once.
    let mut live = state.0.events.subscribe();
    let Some(mut last) = replay(&state, &mut socket, address, since).await else { return };
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(e) => {
                    if e.seq > last && e.accounts.contains(&address) {
                        if !send(&mut socket, &e).await {
                            return;
                        }
                        last = e.seq;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the live feed: catch up from the log.
                    let Some(l) = replay(&state, &mut socket, address, last).await else { return };
                    last = l;
                }
                Err(RecvError::Closed) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            _ = state.0.stopping.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
