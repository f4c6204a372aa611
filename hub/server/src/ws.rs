//! WebSocket `/ws` and `/ws/{client_id}` (SPEC §4). One task per connection owns the socket: it parses client
//! frames and calls the hub, writes what the bus session has queued (replayed and live events, acks, errors) in
//! batches with one flush each, pings, and closes idle clients. A bad frame gets an error frame and the
//! connection stays open.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::auth::socket_publish_limiter;
use switchboard_core::bus::CLOSE_SLOW_CONSUMER;
use switchboard_core::{
    ClientInfo, Delivery, Error, EventDraft, Pattern, Principal, Session, SessionHandle, Source,
    SubscribeOpts, Subscribed,
};
use tokio_util::sync::WaitForCancellationFuture;

use crate::error::{ApiResult, error_body, from_value};
use crate::state::AppState;

/// Close code for a connection that sent nothing (not even a pong) for the idle timeout.
pub const CLOSE_IDLE: u16 = 4010;
/// Close code on hub shutdown.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Largest client frame; a larger one closes the connection (tungstenite refuses to buffer it).
const MAX_FRAME: usize = 1024 * 1024;
/// Bytes read from the socket per read call.
const READ_BUFFER: usize = 512;

/// Subscriptions asked for in the URL, checked before the upgrade so a bad one is a plain HTTP error.
pub struct ConnectSubs {
    pub patterns: Vec<Pattern>,
    pub since: Option<u64>,
    pub epoch: Option<String>,
}

/// Parses `channels=a,b&since=N&epoch=E` and checks the principal may subscribe to each.
///
/// # Errors
/// 422 for a bad pattern or number, 403 for a forbidden pattern.
pub fn connect_subs(
    q: &HashMap<String, String>,
    default: &[&str],
    last_event_id: Option<&str>,
    p: &Principal,
) -> Result<ConnectSubs, Error> {
    let list: Vec<&str> = match q.get("channels").or_else(|| q.get("channel")) {
        Some(c) => c
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect(),
        None => default.to_vec(),
    };
    let patterns = list
        .into_iter()
        .map(Pattern::parse)
        .collect::<Result<Vec<_>, _>>()?;
    for pat in &patterns {
        p.check_subscribe(pat)?;
    }
    let since = match last_event_id
        .or(q.get("since").map(String::as_str))
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(
            s.trim()
                .parse()
                .map_err(|_| Error::invalid("since", "must be a non-negative integer"))?,
        ),
        None => None,
    };
    Ok(ConnectSubs {
        patterns,
        since,
        epoch: q.get("epoch").cloned(),
    })
}

/// Subscribes a fresh session to its connect-time channels, plus `global` and `user:<sub>`.
/// `ack` makes the transport's acknowledgement for each explicitly requested pattern.
pub fn subscribe_all(
    session: &SessionHandle,
    subs: &ConnectSubs,
    p: &Principal,
    mut ack: impl FnMut(&Pattern, Subscribed) -> Option<Bytes>,
) {
    let mut auto = vec![Pattern::Exact("global".into())];
    if let Some(u) = p
        .user()
        .and_then(|u| Pattern::parse(&format!("user:{u}")).ok())
    {
        auto.push(u);
    }
    let opts = |pat: &Pattern| SubscribeOpts {
        since: subs.since,
        epoch: subs.epoch.clone(),
        private_ok: p.private_ok(pat),
    };
    for pat in &subs.patterns {
        if let Err(e) = session.subscribe(pat.clone(), opts(pat), |s| ack(pat, s)) {
            tracing::debug!(client = session.id(), error = %e, "connect-time subscribe refused");
        }
    }
    for pat in auto {
        let _ = session.subscribe(pat.clone(), opts(&pat), |_| None);
    }
}

fn valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c))
}

pub async fn ws_root(
    state: State<AppState>,
    p: Extension<Principal>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    upgrade(state, p, q, headers, ws, None).await
}

pub async fn ws_named(
    state: State<AppState>,
    p: Extension<Principal>,
    Path(client_id): Path<String>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    upgrade(state, p, q, headers, ws, Some(client_id)).await
}

async fn upgrade(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    client_id: Option<String>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|r| {
        Error::bad_request(
            "not_websocket",
            format!("this endpoint takes a WebSocket upgrade: {}", r.body_text()),
        )
    })?;
    if let Some(id) = &client_id
        && !valid_client_id(id)
    {
        return Err(
            Error::invalid("client_id", "must be 1–64 characters from A-Za-z0-9-_.:@").into(),
        );
    }
    state.admit_connection()?;
    let subs = connect_subs(&q, &[], None, &p)?;
    let info = ClientInfo {
        id: client_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        transport: "ws",
        origin: headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        user: p.user().map(str::to_owned),
    };
    let tracker = state.tasks.clone();
    Ok(ws
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        // Small buffers: tungstenite zero-fills its whole read buffer before each read (128 KiB by default, which
        // made every idle connection cost 140 KB). Client frames are small; a big one grows the buffer itself.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| tracker.track_future(run(state, p, info, subs, socket))))
}

fn frame(v: Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn error_frame(id: &Value, e: &Error) -> Bytes {
    let mut v = error_body(e);
    v["type"] = json!("error");
    v["id"] = id.clone();
    frame(v)
}

/// How a connection's loop ended.
enum End {
    /// The client went away or the socket failed: nothing left to say.
    Gone,
    /// The client sent Close: tungstenite has queued the echo, which only needs flushing.
    ClientClosed,
    /// We close, with this code and reason, then finish the close handshake.
    Close(u16, &'static str),
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
async fn run(
    state: AppState,
    p: Principal,
    info: ClientInfo,
    subs: ConnectSubs,
    mut socket: WebSocket,
) {
    let mut session = state.hub.connect(info);
    tracing::debug!(client = session.id(), "ws connected");
    session.send_control(frame(json!({
        "type": "connected",
        "connection_id": session.id(),
        "epoch": state.hub.epoch(),
        "last_seq": state.hub.last_seq(),
        "heartbeat_s": state.config.heartbeat.as_secs(),
    })));
    subscribe_all(session.handle(), &subs, &p, |pat, s| {
        let mut v = json!({"type": "ack", "ok": true, "channel": pat.to_string()});
        if let Some(r) = s.recovered {
            v["recovered"] = json!(r);
        }
        Some(frame(v))
    });
    drop(subs);
    let shutdown = state.shutdown.clone();
    let cut = session.cut();
    // Made once and polled by reference: a fresh `cancelled()` per event would take the token's lock each time.
    let stop = shutdown.cancelled();
    let cut_off = cut.cancelled();
    tokio::pin!(stop, cut_off);
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + state.config.heartbeat,
        state.config.heartbeat,
    );
    let idle = tokio::time::sleep(state.config.idle_timeout);
    tokio::pin!(idle);
    let mut limiter = None;
    // Publishes are pipelined: each is queued to the hub at once and acked, in order, when it commits.
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    let end = loop {
        tokio::select! {
            biased;
            () = &mut stop => break End::Close(CLOSE_GOING_AWAY, "hub shutting down"),
            // Before events, so a busy stream still pings and its client's pongs keep it from idling out.
            _ = ping.tick() => {
                let ping = async {
                    socket.send(Message::Ping(Bytes::new())).await.map_err(|_| WriteStop::Failed)
                };
                if let Err(w) = guarded(stop.as_mut(), cut_off.as_mut(), ping).await {
                    break stopped(w, &session);
                }
            }
            m = socket.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let m = match m {
                    None | Some(Err(_)) => break End::Gone,
                    Some(Ok(Message::Close(_))) => break End::ClientClosed,
                    Some(Ok(m)) => m,
                };
                idle.as_mut().reset(tokio::time::Instant::now() + state.config.idle_timeout);
                session.record_received();
                let reply = match m {
                    Message::Text(t) => handle_text(&state, &p, &mut limiter, t.as_str(), session.handle()),
                    Message::Binary(_) => Reply::Now(Some(error_frame(
                        &Value::Null,
                        &Error::bad_request("bad_frame", "binary frames are not supported; send JSON text"),
                    ))),
                    _ => Reply::Now(None),
                };
                match reply {
                    // A full queue cuts the session off; the next turn of the loop closes it.
                    Reply::Now(Some(r)) => { session.send_control(r); }
                    Reply::Now(None) => {}
                    Reply::Later(f) => in_flight.push_back(f),
                }
            }
            Some(ack) = in_flight.next(), if !in_flight.is_empty() => { session.send_control(ack); }
            d = session.next() => {
                let Some(first) = d else {
                    // The bus cut the session off (slow consumer).
                    break stopped(WriteStop::Cut, &session);
                };
                let batch = write_batch(&mut socket, &mut session, first);
                if let Err(w) = guarded(stop.as_mut(), cut_off.as_mut(), batch).await {
                    break stopped(w, &session);
                }
            }
            () = &mut idle => {
                tracing::debug!(client = session.id(), "idle timeout");
                break End::Close(CLOSE_IDLE, "idle timeout");
            }
        }
    };
    drop(session);
    match end {
        // Boxed: it runs once, and would otherwise make every connection's task bigger.
        End::Close(code, reason) => Box::pin(close_handshake(socket, code, reason)).await,
        End::ClientClosed => {
            let _ = tokio::time::timeout(Duration::from_secs(2), socket.flush()).await;
        }
        End::Gone => {}
    }
    tracing::debug!("ws disconnected");
}

/// Sends our close frame, then reads until the client's Close (answering its pings meanwhile), briefly.
async fn close_handshake(mut socket: WebSocket, code: u16, reason: &'static str) {
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
    match w {
        WriteStop::Shutdown => End::Close(CLOSE_GOING_AWAY, "hub shutting down"),
        WriteStop::Cut if session.close_code() == Some(CLOSE_SLOW_CONSUMER) => {
            End::Close(CLOSE_SLOW_CONSUMER, "slow consumer; resume with since")
        }
        WriteStop::Cut | WriteStop::Failed => End::Gone,
    }
}

fn message(d: Delivery) -> Message {
    match d {
        Delivery::Event(e) => text(e.ws_frame()),
        Delivery::Control(b) => text(&b),
    }
}

/// Writes `first` and whatever else is queued (up to [`MAX_BATCH`] frames), then flushes once.
async fn write_batch(
    socket: &mut WebSocket,
    session: &mut Session,
    first: Delivery,
) -> Result<(), WriteStop> {
    socket
        .feed(message(first))
        .await
        .map_err(|_| WriteStop::Failed)?;
    for _ in 1..MAX_BATCH {
        let Some(d) = session.try_next() else { break };
        socket
            .feed(message(d))
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

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe {
        #[serde(default)]
        id: Value,
        channel: String,
        #[serde(default)]
        since: Option<u64>,
        #[serde(default)]
        epoch: Option<String>,
    },
    Unsubscribe {
        #[serde(default)]
        id: Value,
        channel: String,
    },
    Publish {
        #[serde(default)]
        id: Value,
        channel: String,
        event: String,
        #[serde(default)]
        data: Value,
    },
    Ping {
        #[serde(default)]
        id: Value,
    },
    Answer {
        #[serde(default)]
        id: Value,
        question_id: String,
        answer: Value,
    },
}

/// What a client frame produces: a reply now, or one that arrives when its write commits.
enum Reply {
    Now(Option<Bytes>),
    Later(futures_util::future::BoxFuture<'static, Bytes>),
}

/// Most publishes one connection may have waiting for their commit before it stops reading.
const MAX_IN_FLIGHT: usize = 256;

fn handle_text(
    state: &AppState,
    p: &Principal,
    limiter: &mut Option<governor::DefaultDirectRateLimiter>,
    text: &str,
    session: &SessionHandle,
) -> Reply {
    // Parsed once: the `id` is echoed even when the rest of the frame is wrong.
    let value = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(e) => {
            let e = Error::bad_request("bad_frame", format!("malformed JSON: {e}"));
            return Reply::Now(Some(error_frame(&Value::Null, &e)));
        }
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let parsed: Result<ClientFrame, Error> =
        from_value(value).map_err(|e| Error::bad_request("invalid_frame", e.message().to_owned()));
    match parsed.and_then(|f| handle_frame(state, p, session, limiter, f)) {
        Ok(reply) => reply,
        Err(e) => Reply::Now(Some(error_frame(&id, &e))),
    }
}

/// Acks a committed write, or reports why it failed, once it completes.
fn ack_when_committed(
    id: Value,
    write: impl std::future::Future<Output = Result<switchboard_core::Published, Error>>
    + Send
    + 'static,
) -> Reply {
    Reply::Later(Box::pin(async move {
        match write.await {
            Ok(published) => {
                frame(json!({"type": "ack", "id": id, "ok": true, "seq": published.seq}))
            }
            Err(e) => error_frame(&id, &e),
        }
    }))
}

fn handle_frame(
    state: &AppState,
    p: &Principal,
    session: &SessionHandle,
    limiter: &mut Option<governor::DefaultDirectRateLimiter>,
    f: ClientFrame,
) -> Result<Reply, Error> {
    match f {
        ClientFrame::Subscribe {
            id,
            channel,
            since,
            epoch,
        } => {
            let pat = Pattern::parse(&channel)?;
            p.check_subscribe(&pat)?;
            let opts = SubscribeOpts {
                since,
                epoch,
                private_ok: p.private_ok(&pat),
            };
            // The ack is queued by the bus itself, ahead of this subscription's replay.
            session.subscribe(pat, opts, |s| {
                let mut v = json!({"type": "ack", "id": id, "ok": true});
                if let Some(r) = s.recovered {
                    v["recovered"] = json!(r);
                }
                Some(frame(v))
            })?;
            Ok(Reply::Now(None))
        }
        ClientFrame::Unsubscribe { id, channel } => {
            let pat = Pattern::parse(&channel)?;
            let existed = session.unsubscribe(&pat);
            Ok(Reply::Now(Some(frame(
                json!({"type": "ack", "id": id, "ok": true, "existed": existed}),
            ))))
        }
        ClientFrame::Publish {
            id,
            channel,
            event,
            data,
        } => {
            if limiter
                .get_or_insert_with(socket_publish_limiter)
                .check()
                .is_err()
            {
                return Err(Error::rate_limited());
            }
            let draft = EventDraft::new(channel, event, data, Source::Ws)?;
            p.check_publish(&draft.channel)?;
            let hub = state.hub.clone();
            Ok(ack_when_committed(
                id,
                async move { hub.publish(draft).await },
            ))
        }
        ClientFrame::Ping { id } => Ok(Reply::Now(Some(frame(json!({"type": "pong", "id": id}))))),
        ClientFrame::Answer {
            id,
            question_id,
            answer,
        } => {
            if limiter
                .get_or_insert_with(socket_publish_limiter)
                .check()
                .is_err()
            {
                return Err(Error::rate_limited());
            }
            p.check_publish(switchboard_core::hub::QUESTIONS_CHANNEL)?;
            let hub = state.hub.clone();
            Ok(ack_when_committed(id, async move {
                hub.answer_question(&question_id, answer, Source::Ws).await
            }))
        }
    }
}
