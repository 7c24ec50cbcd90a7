//! New blocks as they come: the event every party waits on instead of a poll interval.
//!
//! A chain changes only in blocks, so whoever waits for a deal's next state (the provider
//! for `Created`, the job creator for `ResultSubmitted`, the solver's and the mediator's log
//! followers) needs to look again only when a block arrives. [`HeadSource`] subscribes to
//! the node's `newHeads` over a WebSocket (the RPC URL with a `ws`/`wss` scheme: anvil,
//! reth and nodes that serve both on one port) and hands out [`Heads`], which wake their
//! holder on each new block. Waits keep their poll interval as an upper bound, so a node
//! without a WebSocket, or one that drops it, only makes them as slow as they were.
//!
//! The watcher is one task per connection, started by the first [`HeadSource::heads`]. It
//! is spawned here rather than under the supervisor because it holds no state and nothing
//! depends on it finishing: it ends when the last handle is dropped, or when
//! [`stop_watchers`] stops every watcher of the process (`dcn dev` does, before it stops
//! its chain). It speaks the subscription itself over tokio-tungstenite rather than through
//! alloy's pubsub client, whose backend logs errors and reconnects on its own when the
//! node goes away: here a lost subscription is a debug line and a backoff of ours.

use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first and the longest pause before subscribing again after a subscription that
/// worked was lost.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(250);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(30);

/// How often the node is pinged, and how long it may say nothing before the connection is
/// taken for dead.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// How long the WebSocket handshake and the subscription's answer may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest message taken from the node (a block header is about a kilobyte).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The process's watchers, and what stops them all.
fn watchers() -> &'static (CancellationToken, TaskTracker) {
    static WATCHERS: OnceLock<(CancellationToken, TaskTracker)> = OnceLock::new();
    WATCHERS.get_or_init(|| (CancellationToken::new(), TaskTracker::new()))
}

/// Stops every new-block watcher of this process and waits until they have closed their
/// connections; waits last their whole time from then on. For a process about to stop the
/// node it runs (`dcn dev`): a watcher would see its node go away.
pub async fn stop_watchers() {
    let (stop, tracker) = watchers();
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

/// Wakes its holder when the chain has a new block (it watches a count of new-block
/// messages, not block numbers, which may go down). Without a watcher (a node without a
/// WebSocket, the fakes of unit tests) [`Heads::wait`] is a plain sleep.
#[derive(Debug, Clone, Default)]
pub struct Heads(Option<watch::Receiver<u64>>);

impl Heads {
    /// A handle that never wakes early: every wait lasts its whole time.
    pub fn none() -> Self {
        Self(None)
    }

    /// A handle on `rx` (tests and fakes drive it by sending block numbers).
    pub fn from_receiver(rx: watch::Receiver<u64>) -> Self {
        Self(Some(rx))
    }

    /// Marks every block so far as seen: call it before reading the chain, so that a block
    /// arriving during the read ends the next [`Heads::wait`] at once (none is missed).
    pub fn mark_seen(&mut self) {
        if let Some(rx) = &mut self.0 {
            rx.borrow_and_update();
        }
    }

    /// Waits until a block not yet seen arrives, or `at_most` passes.
    pub async fn wait(&mut self, at_most: Duration) {
        let Some(rx) = &mut self.0 else {
            tokio::time::sleep(at_most).await;
            return;
        };
        match tokio::time::timeout(at_most, rx.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            // The watcher stopped (no WebSocket after all): sleep from now on.
            Ok(Err(_)) => {
                self.0 = None;
                tokio::time::sleep(at_most).await;
            }
        }
    }

    /// Whether a watcher feeds this handle.
    pub fn is_live(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| rx.has_changed().is_ok())
    }
}

/// The `newHeads` watcher of one RPC endpoint, started on first use.
pub struct HeadSource {
    ws_url: Option<String>,
    /// The template every handle is cloned from; `None` until the watcher started.
    rx: Mutex<Option<watch::Receiver<u64>>>,
}

impl std::fmt::Debug for HeadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold credentials: never printed.
        f.debug_struct("HeadSource").field("websocket", &self.ws_url.is_some()).finish()
    }
}

/// The WebSocket URL of an RPC URL: `ws` for `http`, `wss` for `https`, itself for a
/// WebSocket URL; `None` for anything else (an IPC path).
pub fn ws_url_of(rpc_url: &str) -> Option<String> {
    let mut url = url::Url::parse(rpc_url).ok()?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    Some(url.to_string())
}

impl HeadSource {
    /// The watcher of `rpc_url`'s new blocks (not started yet).
    pub fn new(rpc_url: &str) -> Arc<Self> {
        Arc::new(Self { ws_url: ws_url_of(rpc_url), rx: Mutex::new(None) })
    }

    /// A source that never wakes anyone: [`Heads::none`] for everyone.
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self { ws_url: None, rx: Mutex::new(None) })
    }

    /// A handle that wakes on each new block; the first call starts the watcher (within a
    /// tokio runtime). Handles made before its subscription is up wake from then on.
    pub fn heads(&self) -> Heads {
        let Some(url) = &self.ws_url else { return Heads::none() };
        let (stop, tracker) = watchers();
        if stop.is_cancelled() {
            return Heads::none();
        }
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        if rx.is_none() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else { return Heads::none() };
            let (tx, first) = watch::channel(0u64);
            let url = url.clone();
            tracker.spawn_on(
                async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = watch_heads(url, tx) => {}
                    }
                },
                &runtime,
            );
            *rx = Some(first);
        }
        Heads(rx.clone())
    }
}

/// Feeds `tx` with each new block until every receiver is gone. If the first subscription
/// fails, the node has no WebSocket here: it stops, and handles sleep out their waits. A
/// subscription that worked and was lost is taken up again, after a pause that starts
/// short again each time one works.
async fn watch_heads(url: String, tx: watch::Sender<u64>) {
    let mut delay = RESUBSCRIBE_MIN;
    let mut worked = false;
    loop {
        let outcome = tokio::select! {
            _ = tx.closed() => return,
            r = follow(&url, &tx) => r,
        };
        match outcome {
            Ok(()) => return,
            Err(e) if !worked && !e.subscribed => {
                tracing::debug!(error = %e.reason, "no newHeads subscription on the node's WebSocket: waits fall back to polling");
                return;
            }
            Err(e) => {
                if e.subscribed {
                    worked = true;
                    delay = RESUBSCRIBE_MIN;
                }
                tracing::debug!(error = %e.reason, retry_in_ms = delay.as_millis() as u64, "the newHeads subscription ended; subscribing again");
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RESUBSCRIBE_MAX);
    }
}

struct Lost {
    subscribed: bool,
    reason: String,
}

/// One subscription: tells `tx` of each new block; `Ok` when every receiver is gone. The
/// node is pinged every [`PING_EVERY`]: a connection that says nothing, not even a pong,
/// for [`SILENCE_LIMIT`] is taken for dead (a chain that mines on demand may have no new
/// block for hours, so silence of blocks alone means nothing).
async fn follow(url: &str, tx: &watch::Sender<u64>) -> Result<(), Lost> {
    let lost = |subscribed: bool| move |e: &dyn std::fmt::Display| Lost { subscribed, reason: e.to_string() };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    // Nagle off: each new block is one small frame.
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (mut ws, _) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, connect)
        .await
        .map_err(|_| lost(false)(&"no WebSocket handshake in time"))?
        .map_err(|e| lost(false)(&e))?;
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    ws.send(Message::Text(request.into())).await.map_err(|e| lost(false)(&e))?;
    let mut subscribed = false;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = tokio::time::Instant::now();
    // A block mined between subscribing and the first header is not missed: waiters look
    // at the chain when they start.
    loop {
        let limit = if subscribed { SILENCE_LIMIT } else { SUBSCRIBE_TIMEOUT };
        let next = tokio::select! {
            _ = ping.tick() => {
                ws.send(Message::Ping(Default::default())).await.map_err(|e| lost(subscribed)(&e))?;
                continue;
            }
            _ = tokio::time::sleep_until(heard + limit) => {
                return Err(lost(subscribed)(&"the node said nothing, not even a pong, for too long"));
            }
            next = ws.next() => next,
        };
        heard = tokio::time::Instant::now();
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err(lost(subscribed)(&"the node closed the WebSocket")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(lost(subscribed)(&e)),
        };
        match parse(&text) {
            Reply::Subscribed => subscribed = true,
            Reply::Refused(why) => return Err(lost(subscribed)(&why)),
            // Every block wakes the waiters, whatever its number: a chain reset at the same
            // address, or a reorg, may bring a lower one.
            Reply::Head(_) => tx.send_modify(|n| *n = n.wrapping_add(1)),
            Reply::Other => {}
        }
        if tx.is_closed() {
            let _ = ws.close(None).await;
            return Ok(());
        }
    }
}

/// What a message of the node says.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// The subscription is up.
    Subscribed,
    /// The node refused it (no `eth_subscribe` here).
    Refused(String),
    /// A new block, by number.
    Head(u64),
    /// Anything else.
    Other,
}

fn parse(text: &str) -> Reply {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else { return Reply::Other };
    if v.get("id").and_then(|id| id.as_u64()) == Some(1) {
        return match v.get("error") {
            Some(e) => Reply::Refused(e.to_string()),
            None => Reply::Subscribed,
        };
    }
    let number = v.pointer("/params/result/number").and_then(|n| n.as_str());
    match number.and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok()) {
        Some(n) => Reply::Head(n),
        None => Reply::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_messages() {
        assert_eq!(parse(r#"{"jsonrpc":"2.0","id":1,"result":"0xabc"}"#), Reply::Subscribed);
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#),
            Reply::Refused(_)
        ));
        let head = r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0xabc","result":{"number":"0x1f","hash":"0x00"}}}"#;
        assert_eq!(parse(head), Reply::Head(31));
        assert_eq!(parse("not json"), Reply::Other);
    }

    #[test]
    fn websocket_urls() {
        assert_eq!(ws_url_of("http://127.0.0.1:8546").as_deref(), Some("ws://127.0.0.1:8546/"));
        assert_eq!(ws_url_of("https://node.example/v3/KEY").as_deref(), Some("wss://node.example/v3/KEY"));
        assert_eq!(ws_url_of("ws://h:1").as_deref(), Some("ws://h:1/"));
        assert_eq!(ws_url_of("/tmp/geth.ipc"), None);
    }

    #[tokio::test]
    async fn a_wait_ends_at_a_block_not_yet_seen() {
        let long = Duration::from_secs(3600);
        let (tx, rx) = watch::channel(0u64);
        let mut heads = Heads::from_receiver(rx);
        heads.mark_seen();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), heads.wait(long)).await.is_err(),
            "no new block: still waiting"
        );
        heads.mark_seen();
        // A block that arrived after the look and before the wait ends it at once.
        tx.send(1).unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(10), heads.wait(long)).await.is_ok(), "woken by the block");
        assert!(heads.is_live());

        drop(tx);
        heads.wait(Duration::from_millis(1)).await;
        assert!(!heads.is_live(), "a stopped watcher: plain sleeps from now on");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), heads.wait(long)).await.is_err(),
            "and they last their whole time"
        );
    }

    /// A node on loopback that answers `eth_subscribe` with `answer` and then sends `heads`
    /// (block numbers) once per connection, closing each connection but the last.
    async fn node(answer: &'static str, connections: Vec<Vec<u64>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let last = connections.len() - 1;
            for (i, heads) in connections.into_iter().enumerate() {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let _request = ws.next().await;
                ws.send(Message::Text(answer.into())).await.unwrap();
                for n in heads {
                    let head = format!(
                        r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0x1","result":{{"number":"{n:#x}"}}}}}}"#
                    );
                    ws.send(Message::Text(head.into())).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if i == last {
                    // Held open, answering pings, until the test ends.
                    while ws.next().await.is_some() {}
                }
            }
        });
        url
    }

    #[tokio::test]
    async fn every_block_wakes_even_lower_ones_and_a_lost_subscription_is_taken_up_again() {
        let long = Duration::from_secs(3600);
        let ok = r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#;
        // Block 5, then 3 (a chain reset at the same address), the connection lost, then 1.
        let url = node(ok, vec![vec![5, 3], vec![1]]).await;
        let source = HeadSource::new(&url);
        let mut heads = source.heads();
        for block in [5, 3, 1] {
            let woken = tokio::time::timeout(Duration::from_secs(10), heads.wait(long)).await;
            assert!(woken.is_ok(), "block {block} ends the wait");
            heads.mark_seen();
        }
        assert!(heads.is_live());
    }

    #[tokio::test]
    async fn a_node_that_refuses_the_subscription_leaves_plain_waits() {
        let refused = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no such method"}}"#;
        let url = node(refused, vec![vec![]]).await;
        let source = HeadSource::new(&url);
        let heads = source.heads();
        for _ in 0..200 {
            if !heads.is_live() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!heads.is_live(), "the watcher gave up");
    }
}
