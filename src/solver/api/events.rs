//! `GET /api/v1/events?address=0x…&since=N`: a WebSocket of the events concerning one
//! account, as JSON text messages, in sequence order. Everything after `since` is replayed
//! from the store first, then live events follow; a client that reconnects with the last
//! sequence number it saw misses nothing and sees nothing twice. Events carry only what
//! the public lists show, so subscribing needs no signature.
//!
//! A subscription is a held socket, so it is bounded (THREATS V5): at most
//! `max_subscriptions` in all and `max_subscriptions_per_address` per client address;
//! messages from the client of at most [`MAX_INCOMING_BYTES`]; a ping every
//! [`PING_EVERY`], and a client silent for [`SILENT_LIMIT`] is dropped; a client that does
//! not take a message within [`SEND_TIMEOUT`], or lets [`MAX_QUEUED_BYTES`] queue, is
//! dropped (the others never wait on it: each socket has its own task and live events
//! come through a broadcast channel, replayed from the store when a socket falls behind).

use super::{limits::client_key, ApiError, ApiQuery, AppState};
use crate::protocol::records::Event;
use alloy::primitives::Address;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Largest message a subscriber may send (it has nothing to say but pongs and close).
pub const MAX_INCOMING_BYTES: usize = 4096;
/// How often the server pings a subscriber.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A subscriber heard nothing from for this long is dropped.
pub const SILENT_LIMIT: Duration = Duration::from_secs(60);
/// Longest a message may take to go out.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes queued for one subscriber.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// The open subscriptions, in all and per client address.
#[derive(Debug)]
pub struct Subscribers {
    max_total: usize,
    max_per_address: usize,
    open: Arc<Mutex<Open>>,
}

/// Open subscriptions: in all, and by client address.
type Open = (usize, HashMap<IpAddr, usize>);

impl Subscribers {
    /// At most `max_total` subscriptions, and `max_per_address` from one client address.
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self { max_total, max_per_address, open: Arc::new(Mutex::new((0, HashMap::new()))) }
    }

    /// Takes a place for a subscriber at `ip` (none for an in-process router), or refuses.
    /// The place is held for as long as the socket lives (it moves into the socket's task),
    /// so that a client told `101 Switching Protocols` holds a place it keeps.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<Place, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_subscribers",
                format!("the solver holds its {} event streams: try again later", self.max_total),
            ));
        }
        let key = ip.map(client_key);
        if let Some(key) = key {
            let n = open.1.entry(key).or_default();
            if *n >= self.max_per_address {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_subscribers",
                    format!("{} event streams are open from this address already: close one", self.max_per_address),
                ));
            }
            *n += 1;
        }
        open.0 += 1;
        Ok(Place { open: self.open.clone(), key })
    }

    /// Open subscriptions.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// One subscriber's place, given back when dropped.
#[derive(Debug)]
pub struct Place {
    open: Arc<Mutex<Open>>,
    key: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(key) = self.key {
            if let Some(n) = open.1.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&key);
                }
            }
        }
    }
}

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
    peer: Option<axum::extract::Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let address: Address =
        p.address.parse().map_err(|_| ApiError::bad_param("address", format!("`{}` is not an address", p.address)))?;
    let since = p.since.unwrap_or(0);
    // Taken before the upgrade, to refuse with a status, and kept by the socket's task: a
    // client that was told `101` holds its place (it is given back if the upgrade fails).
    let place = state.0.subscribers.admit(peer.map(|p| p.0 .0.ip()))?;
    let ws = ws
        .max_message_size(MAX_INCOMING_BYTES)
        .max_frame_size(MAX_INCOMING_BYTES)
        .max_write_buffer_size(MAX_QUEUED_BYTES);
    Ok(ws.on_upgrade(move |socket| async move {
        let _place = place;
        stream(state.clone(), socket, address, since).await
    }))
}

async fn send(socket: &mut WebSocket, event: &Event) -> bool {
    let text = serde_json::to_string(event).expect("events serialize");
    matches!(tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await, Ok(Ok(())))
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
    let mut heard = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if heard.elapsed() > SILENT_LIMIT {
                    tracing::debug!(%address, "event subscriber silent: dropped");
                    return;
                }
                let sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
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
                Some(Ok(_)) => heard = Instant::now(),
            },
        }
    }
}
