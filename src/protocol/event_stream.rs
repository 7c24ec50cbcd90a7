//! The solver's numbered event stream, from the clients' side: a WebSocket subscription
//! ([`subscribe`]) read as an [`EventStream`] of decoded events, each message size-capped
//! and the connection taken for dead after [`EVENT_SILENCE_LIMIT`] of silence.

use super::client::{ClientError, EVENT_SILENCE_LIMIT, MAX_EVENT_BYTES, REQUEST_TIMEOUT};
use super::records::Event;
use alloy::primitives::Address;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tokio_tungstenite::tungstenite::Message;

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

/// Subscribes at the solver at `base` to the events concerning `address` after sequence
/// number `since`.
pub(super) async fn subscribe(base: &str, address: Address, since: u64) -> Result<EventStream, ClientError> {
    let unreachable = |reason: String| ClientError::Unreachable { url: base.to_string(), reason };
    let ws_base = base.replacen("http", "ws", 1);
    let url = format!("{ws_base}/api/v1/events?address={address}&since={since}");
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_EVENT_BYTES))
        .max_frame_size(Some(MAX_EVENT_BYTES));
    // Nagle off: each event is one small frame (and so is the client's pong).
    let connect = tokio_tungstenite::connect_async_with_config(&url, Some(config), true);
    let (ws, _) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
        .await
        .map_err(|_| unreachable(format!("no WebSocket handshake within {} s", REQUEST_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    let base = base.to_string();
    // `None` once the socket is given up: the stream then ends.
    let events = futures_util::stream::unfold(Some(ws), move |ws| {
        let base = base.clone();
        async move {
            let mut ws = ws?;
            loop {
                let Ok(next) = tokio::time::timeout(EVENT_SILENCE_LIMIT, ws.next()).await else {
                    let secs = EVENT_SILENCE_LIMIT.as_secs();
                    let reason = format!("no event and no ping for {secs} s: the connection is gone");
                    return Some((Err(ClientError::Unreachable { url: base, reason }), None));
                };
                let item = match next? {
                    Ok(Message::Text(text)) => {
                        serde_json::from_str::<Event>(&text).map_err(|e| ClientError::Decode(e.to_string()))
                    }
                    Ok(Message::Close(_)) => return None,
                    Ok(_) => continue,
                    Err(e) => Err(ClientError::Unreachable { url: base, reason: e.to_string() }),
                };
                return Some((item, Some(ws)));
            }
        }
    });
    Ok(EventStream::new(events, since))
}
