//! WebSocket `/ws` and `/ws/{client_id}` (SPEC §4).
//!
//! - this module: the upgrade and the connection loop. One task per connection owns the socket: it reads client
//!   frames, writes what the bus session has queued (replayed and live events, acks, errors) in batches with one
//!   flush each, pings, and closes idle clients.
//! - [`frames`]: client frames and their replies.
//!
//! The session is opened (and its connect-time subscriptions checked) through the caller before the upgrade, by
//! [`crate::connect`], as SSE does. A bad frame gets an error frame and the connection stays open; a frame over
//! 1 MiB gets `payload_too_large`, and only one past the hard protocol limit closes the connection with 1009.

mod frames;

pub(crate) use frames::Reply;

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_core::bus::{CLOSE_SLOW_CONSUMER, CLOSE_TERMINATED};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{ClientInfo, Delivery, Error, Event, Session, SessionHandle};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFuture;

use crate::connect::{ConnectQuery, open, origin};
use crate::error::{ApiPath, ApiResult, WsCaller};
use crate::state::AppState;
use frames::{error_frame, frame, handle_text, subscribed_ack};

/// Close code for a connection that sent nothing (not even a pong) for the idle timeout.
pub const CLOSE_IDLE: u16 = 4010;
/// Close code on hub shutdown.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Why the hub closes a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// The hub is shutting down.
    Shutdown,
    /// The bus cut the connection off: its queue overflowed.
    SlowConsumer,
    /// The app terminated the connection's user.
    Terminated,
    /// Nothing (not even a pong) within the idle timeout.
    Idle,
    /// A frame past the hard limit.
    TooBig,
}

/// A protocol spoken over the WebSocket connection loop ([`run`]): how a client's text frame becomes calls on
/// the session, how an event is framed, and the close code for each reason. `/ws` speaks [`Native`]; the Pusher
/// transport speaks its own.
pub(crate) trait Wire: Send + 'static {
    /// Handles one text frame.
    fn text(&mut self, text: &str, session: &SessionHandle) -> Reply;
    /// The reply to a binary frame, if any.
    fn binary(&mut self) -> Option<Bytes>;
    /// An event as a frame.
    fn event(e: &Event) -> &Bytes;
    /// The close code and reason for `why`.
    fn close(why: Closing) -> (u16, &'static str);
}

/// The hub's own protocol (SPEC §4).
pub(crate) struct Native;

impl Wire for Native {
    fn text(&mut self, text: &str, session: &SessionHandle) -> Reply {
        handle_text(text, session)
    }
    fn binary(&mut self) -> Option<Bytes> {
        Some(error_frame(
            &Value::Null,
            &Error::bad_request(
                "bad_frame",
                "binary frames are not supported; send JSON text",
            ),
        ))
    }
    fn event(e: &Event) -> &Bytes {
        e.ws_frame()
    }
    fn close(why: Closing) -> (u16, &'static str) {
        match why {
            Closing::Shutdown => (CLOSE_GOING_AWAY, "hub shutting down"),
            Closing::SlowConsumer => (CLOSE_SLOW_CONSUMER, "slow consumer; resume with since"),
            Closing::Terminated => (CLOSE_TERMINATED, "terminated by the app"),
            Closing::Idle => (CLOSE_IDLE, "idle timeout"),
            Closing::TooBig => (CLOSE_TOO_BIG, "frame over the hard limit"),
        }
    }
}

/// Largest frame the socket reads at all: past it the connection is closed with 1009. Frames between
/// [`MAX_BODY_BYTES`] and this get an error frame instead, and the connection stays open.
const HARD_FRAME_LIMIT: usize = 4 * MAX_BODY_BYTES;
/// Close code for a frame past [`HARD_FRAME_LIMIT`].
const CLOSE_TOO_BIG: u16 = 1009;
/// Bytes read from the socket per read call, and the read buffer every connection keeps. 256: most client
/// frames (subscribes, pongs, small publishes) fit, and a bigger one makes tungstenite reserve its full length and
/// read the rest; 512 cost every idle connection 256 bytes more (issue 14).
const READ_BUFFER: usize = 256;

fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c))
}

/// `GET /ws`.
pub async fn ws_root(
    state: State<AppState>,
    c: WsCaller,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    upgrade(state, c, q, headers, ws, None)
}

/// `GET /ws/{client_id}`: the same, with a connection id the client chose.
pub async fn ws_named(
    state: State<AppState>,
    c: WsCaller,
    ApiPath(client_id): ApiPath<String>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    upgrade(state, c, q, headers, ws, Some(client_id))
}

fn upgrade(
    State(state): State<AppState>,
    WsCaller(caller): WsCaller,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    client_id: Option<String>,
) -> ApiResult<Response> {
    let ws = configure(ws)?;
    if let Some(id) = &client_id
        && !valid_client_id(id)
    {
        return Err(
            Error::invalid("client_id", "must be 1–64 characters from A-Za-z0-9-_.:@").into(),
        );
    }
    let query = ConnectQuery::parse(&q, &[], None)?;
    let info = ClientInfo {
        id: client_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        transport: "ws",
        origin: origin(&headers),
    };
    let greeting = frame(&json!({
        "type": "connected",
        "connection_id": info.id,
        "epoch": state.hub.epoch(),
        "last_seq": state.hub.last_seq(),
        "heartbeat_s": state.config.heartbeat.as_secs(),
    }));
    let session = open(&caller, info, &query, Some(greeting), |p, s| {
        Some(subscribed_ack(("channel", json!(p.to_string())), s))
    })?;
    Ok(upgraded(ws, state, session, Native))
}

/// Answers the upgrade and, once it is done, runs the connection in a task of its own. Not in axum's upgrade
/// task: that one keeps the upgrade's configuration and callback beside the future it awaits (about 400 bytes
/// more per connection for as long as the connection lives).
pub(crate) fn upgraded<W: Wire>(
    ws: WebSocketUpgrade,
    state: AppState,
    session: Session,
    wire: W,
) -> Response {
    ws.on_upgrade(move |socket| {
        let tracker = state.tasks.clone();
        tracker.spawn(run(state, session, socket, wire));
        std::future::ready(())
    })
}

/// The upgrade, or a 400 for a request that is not one, with the frame limits and buffer sizes every hub
/// WebSocket uses.
///
/// # Errors
/// 400 `not_websocket`.
pub(crate) fn configure(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, Error> {
    let ws = ws.map_err(|r| {
        Error::bad_request(
            "not_websocket",
            format!("this endpoint takes a WebSocket upgrade: {}", r.body_text()),
        )
    })?;
    Ok(ws
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        // Small buffers: tungstenite zero-fills its whole read buffer before each read (128 KiB by default, which
        // made every idle connection cost 140 KB). Client frames are small; a big one grows the buffer itself.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(16 * 1024))
}

/// How a connection's loop ended.
enum End {
    /// The client went away or the socket failed: nothing left to say.
    Gone,
    /// The client sent Close: tungstenite has queued the echo, which only needs flushing.
    ClientClosed,
    /// We close, for this reason, then finish the close handshake.
    Close(Closing),
}

/// Why a batch write stopped early.
enum WriteStop {
    Shutdown,
    Cut,
    Failed,
}

/// Most frames written between two flushes.
const MAX_BATCH: usize = 64;

/// One task per connection owns the socket: it reads client frames, writes everything the session has queued
/// (all of it, then one flush), pings, and times out idle clients. A blocked write still yields to shutdown and
/// to the bus cutting the session off.
///
/// Every idle connection keeps this future, so its size is the main part of a connection's memory (issue 14):
/// - it is an `async move` block rather than an `async fn`, which would keep a second copy of its arguments
///   (the socket, the session) beside the locals they are moved into, about 530 bytes;
/// - one timer serves the heartbeat and the idle timeout: it fires at whichever is due first, and a frame from the
///   client only moves the idle deadline (an `Instant`), not the timer.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of its arguments in every connection's future"
)]
pub(crate) fn run<W: Wire>(
    state: AppState,
    mut session: Session,
    mut socket: WebSocket,
    mut wire: W,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        tracing::debug!(client = session.id(), "ws connected");
        let shutdown = state.shutdown.clone();
        let cut = session.cut();
        // Made once and polled by reference: a fresh `cancelled()` per event would take the token's lock each time.
        let stop = shutdown.cancelled();
        let cut_off = cut.cancelled();
        tokio::pin!(stop, cut_off);
        let (heartbeat, idle_timeout) = (state.config.heartbeat, state.config.idle_timeout);
        let now = Instant::now();
        let mut ping_at = now + heartbeat;
        let mut idle_at = now + idle_timeout;
        let timer = tokio::time::sleep_until(ping_at.min(idle_at));
        tokio::pin!(timer);
        // Publishes are pipelined: each is queued to the hub at once and acked, in order, when it commits. Made
        // on the first publish: an empty `FuturesOrdered` already allocates, and most connections never publish.
        let mut in_flight = None;
        let end = loop {
            tokio::select! {
                biased;
                () = &mut stop => break End::Close(Closing::Shutdown),
                // Before events, so a busy stream still pings and its client's pongs keep it from idling out.
                () = &mut timer => {
                    let now = Instant::now();
                    if now >= idle_at {
                        tracing::debug!(client = session.id(), "idle timeout");
                        break End::Close(Closing::Idle);
                    }
                    if now >= ping_at {
                        ping_at = now + heartbeat;
                        let ping = async {
                            socket.send(Message::Ping(Bytes::new())).await.map_err(|_| WriteStop::Failed)
                        };
                        if let Err(w) = guarded(stop.as_mut(), cut_off.as_mut(), ping).await {
                            break stopped(w, &session);
                        }
                    }
                    timer.as_mut().reset(ping_at.min(idle_at));
                }
                m = socket.recv(), if in_flight.as_ref().is_none_or(|f: &Pending| f.len() < MAX_IN_FLIGHT) => {
                    let m = match m {
                        Some(Err(e)) if is_capacity(&e) => break End::Close(Closing::TooBig),
                        None | Some(Err(_)) => break End::Gone,
                        Some(Ok(Message::Close(_))) => break End::ClientClosed,
                        Some(Ok(m)) => m,
                    };
                    idle_at = Instant::now() + idle_timeout;
                    session.record_received();
                    let reply = match m {
                        Message::Text(t) => wire.text(t.as_str(), session.handle()),
                        Message::Binary(_) => Reply::Now(wire.binary()),
                        _ => Reply::Now(None),
                    };
                    match reply {
                        // A full queue cuts the session off; the next turn of the loop closes it.
                        Reply::Now(Some(r)) => { session.send_control(r); }
                        Reply::Now(None) => {}
                        Reply::Later(f) => in_flight.get_or_insert_with(Pending::new).push_back(f),
                    }
                }
                Some(ack) = next_ack(&mut in_flight), if in_flight.as_ref().is_some_and(|f| !f.is_empty()) => {
                    if let Some(ack) = ack {
                        session.send_control(ack);
                    }
                }
                d = session.next() => {
                    let Some(first) = d else {
                        // The bus cut the session off (slow consumer).
                        break stopped(WriteStop::Cut, &session);
                    };
                    // Boxed: the write's future is the largest state of this loop, and every idle connection
                    // would carry room for it (one allocation per batch of up to 64 frames is far cheaper).
                    let batch = write_batch::<W>(&mut socket, &mut session, first);
                    if let Err(w) = Box::pin(guarded(stop.as_mut(), cut_off.as_mut(), batch)).await {
                        break stopped(w, &session);
                    }
                }
            }
        };
        drop(session);
        match end {
            // Boxed: it runs once, and would otherwise make every connection's task bigger.
            End::Close(why) => {
                let (code, reason) = W::close(why);
                Box::pin(close_handshake(socket, code, reason)).await;
            }
            End::ClientClosed => {
                let _ = tokio::time::timeout(Duration::from_secs(2), socket.flush()).await;
            }
            End::Gone => {}
        }
        tracing::debug!("ws disconnected");
    }
}

/// Publishes waiting for their commit, acked in order.
type Pending =
    futures_util::stream::FuturesOrdered<futures_util::future::BoxFuture<'static, Option<Bytes>>>;

/// The next ack of `pending` (which the caller has checked is not empty).
async fn next_ack(pending: &mut Option<Pending>) -> Option<Option<Bytes>> {
    match pending {
        Some(p) => p.next().await,
        None => None,
    }
}

/// Did the socket refuse a frame past [`HARD_FRAME_LIMIT`]?
fn is_capacity(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(t, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        cause = c.source();
    }
    false
}

/// Sends our close frame, then reads until the client's Close (answering its pings meanwhile), briefly.
pub(crate) async fn close_handshake(mut socket: WebSocket, code: u16, reason: &'static str) {
    if close(&mut socket, code, reason).await {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(m)) = socket.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Runs `write` unless shutdown or the bus cutting the session off comes first: a write to a client that does
/// not read can block for as long as the client likes.
async fn guarded(
    stop: Pin<&mut WaitForCancellationFuture<'_>>,
    cut_off: Pin<&mut WaitForCancellationFuture<'_>>,
    write: impl Future<Output = Result<(), WriteStop>>,
) -> Result<(), WriteStop> {
    tokio::select! {
        biased;
        () = stop => Err(WriteStop::Shutdown),
        () = cut_off => Err(WriteStop::Cut),
        r = write => r,
    }
}

fn stopped(w: WriteStop, session: &Session) -> End {
    match (w, session.close_code()) {
        (WriteStop::Shutdown, _) => End::Close(Closing::Shutdown),
        (WriteStop::Cut, Some(CLOSE_SLOW_CONSUMER)) => End::Close(Closing::SlowConsumer),
        (WriteStop::Cut, Some(CLOSE_TERMINATED)) => End::Close(Closing::Terminated),
        (WriteStop::Cut | WriteStop::Failed, _) => End::Gone,
    }
}

fn message<W: Wire>(d: Delivery) -> Message {
    match d {
        Delivery::Event(e) => text(W::event(&e)),
        Delivery::Control(b) => text(&b),
    }
}

/// Writes `first` and whatever else is queued (up to [`MAX_BATCH`] frames), then flushes once.
async fn write_batch<W: Wire>(
    socket: &mut WebSocket,
    session: &mut Session,
    first: Delivery,
) -> Result<(), WriteStop> {
    socket
        .feed(message::<W>(first))
        .await
        .map_err(|_| WriteStop::Failed)?;
    for _ in 1..MAX_BATCH {
        let Some(d) = session.try_next() else { break };
        socket
            .feed(message::<W>(d))
            .await
            .map_err(|_| WriteStop::Failed)?;
    }
    socket.flush().await.map_err(|_| WriteStop::Failed)
}

fn text(b: &Bytes) -> Message {
    // Frames are made by serde_json, so they are UTF-8.
    Message::Text(Utf8Bytes::try_from(b.clone()).unwrap_or_default())
}

/// Sends a close frame; true once it is on its way.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> bool {
    let msg = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    // A client that does not read may never take the close frame; don't wait for it forever.
    matches!(
        tokio::time::timeout(Duration::from_secs(5), socket.send(msg)).await,
        Ok(Ok(()))
    )
}

/// Most publishes one connection may have waiting for their commit before it stops reading.
const MAX_IN_FLIGHT: usize = 256;
