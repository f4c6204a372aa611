//! Socket.IO (SPEC §6), through socketioxide, so `socket.io-client` v4 works unchanged, on namespaces `/` and
//! `/ws`, on the hub's own port.
//!
//! Connecting: the auth payload is `{token?, since?, epoch?, channels?}`. The caller is the token's (or the
//! HTTP request's, as the guard decided); a refused caller, a refused `channels` entry or the connection cap
//! gives the client `connect_error` with the reason. socket.io-client sends the auth payload again on every
//! reconnect, so a client that keeps its last seq there resumes: the connect-time `channels`, `global`, and the
//! first `subscribe` of each room on the connection replay the log after `since`, then go live (no gap, no
//! duplicate). A `subscribe` may also carry its own `since`.
//!
//! Events: `subscribe {room}` and `unsubscribe {room}` answer through the ack (`{status:"success", room}` or
//! `{status:"error", message}`); `publish {channel, event, data}` acks `{status:"success", seq}`;
//! `answer {question_id, answer}`; `debug:rooms` acks the socket's subscriptions. The hub emits each event under
//! its own name with the envelope as payload, after `connection_established {data:{connection_id}}`.
//!
//! Flow control: one task per socket moves what its bus session queues into socketioxide's bounded buffer,
//! waiting (alone) while that buffer is full. A socket that does not drain lets its bus queue overflow, and the
//! bus cuts it off: it is disconnected as a slow consumer, and nobody else waits for it. Messages over 1 MiB
//! close the socket, as Socket.IO's own `maxHttpBufferSize` does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, MaybeHttpExtension, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{
    ClientInfo, Delivery, Error, Event, NewEvent, Pattern, Principal, Published, Resume, Session,
    SessionHandle, Source,
};
use tokio_util::sync::CancellationToken;

use crate::peer::Peer;
use crate::state::AppState;
use axum::extract::ConnectInfo;

/// Packets socketioxide buffers per socket before an emit fails (its default is 128).
const SOCKET_BUFFER: usize = 256;
/// How often a socket whose buffer is full is checked for room.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(2);
/// Bytes read from a socket per read call: client messages are small, and a bigger one grows the buffer.
const READ_BUFFER: usize = 512;

/// What a client may put in `auth`.
#[derive(Debug, Default, Deserialize)]
struct Auth {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    channels: Option<Channels>,
}

/// `channels` as a list or as one comma-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Channels {
    List(Vec<String>),
    One(String),
}

impl Channels {
    fn patterns(&self) -> Result<Vec<Pattern>, Error> {
        let list: Vec<&str> = match self {
            Channels::List(l) => l.iter().map(String::as_str).collect(),
            Channels::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect(),
        };
        list.into_iter().map(Pattern::parse).collect()
    }
}

/// A refusal, as the client's `connect_error` shows it.
#[derive(Debug)]
struct Refused(Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code(), self.0.message())
    }
}

/// One socket's state, kept in its extensions from admission to the connect handler.
pub(crate) struct Conn {
    session: Mutex<Option<Session>>,
    handle: SessionHandle,
    resume: Resume,
    /// Rooms subscribed on this connection so far: the auth `since` applies to each room's first subscribe.
    seen: Mutex<HashSet<Pattern>>,
    gone: CancellationToken,
}

#[derive(Clone)]
struct ConnRef(Arc<Conn>);

/// The Socket.IO layer for the hub's router.
pub fn layer(state: AppState) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .max_payload(MAX_BODY_BYTES as u64)
        // socketioxide's WebSocket limit is 64 MiB by default: past 1 MiB (plus framing) the socket is closed.
        .ws_max_message_size(MAX_BODY_BYTES + 1024)
        .ws_max_frame_size(MAX_BODY_BYTES + 1024)
        .ws_read_buffer_size(READ_BUFFER)
        .max_buffer_size(SOCKET_BUFFER)
        .build_layer();
    for ns in ["/", "/ws"] {
        let admit_state = state.clone();
        let run_state = state.clone();
        let admit =
            move |s: SocketRef,
                  TryData(auth): TryData<Value>,
                  MaybeHttpExtension(p): MaybeHttpExtension<Principal>| {
                let state = admit_state.clone();
                async move { admit(&state, &s, auth.ok(), p).map_err(Refused) }
            };
        let on_connect = move |s: SocketRef| {
            let state = run_state.clone();
            async move { connected(state, s) }
        };
        io.ns(ns, on_connect.with(admit));
    }
    layer
}

/// Decides who the socket is and opens its session, before the namespace connects.
fn admit(
    state: &AppState,
    s: &SocketRef,
    auth: Option<Value>,
    from_http: Option<Principal>,
) -> Result<(), Error> {
    let headers = &s.req_parts().headers;
    let info = ClientInfo {
        id: s.id.to_string(),
        transport: "socketio",
        origin: crate::connect::origin(headers),
    };
    let conn = admission(state, auth, from_http, info)?;
    s.extensions.insert(ConnRef(Arc::new(conn)));
    // Registered here, before socketioxide answers the connect: the connect handler runs in a task of its own
    // after that answer, and a client that emits at once (in its `connect` callback) must find them in place.
    for event in [
        "subscribe",
        "unsubscribe",
        "publish",
        "answer",
        "debug:rooms",
    ] {
        s.on(event, on_event);
    }
    s.on_disconnect(|s: SocketRef, _: DisconnectReason| async move {
        if let Some(ConnRef(c)) = s.extensions.get::<ConnRef>() {
            c.gone.cancel();
        }
    });
    Ok(())
}

/// The auth payload as the adapter sees it: who the caller is, and the session with its connect-time rooms.
pub(crate) fn admission(
    state: &AppState,
    auth: Option<Value>,
    from_http: Option<Principal>,
    info: ClientInfo,
) -> Result<Conn, Error> {
    let auth: Auth = match auth {
        None | Some(Value::Null) => Auth::default(),
        Some(v) => {
            serde_json::from_value(v).map_err(|e| Error::invalid("auth", format_args!("{e}")))?
        }
    };
    let principal = match auth.token.as_deref() {
        Some(t) => state.hub.authenticate(Some(t), false)?,
        None => from_http.ok_or_else(|| {
            Error::unauthorized("this hub requires a token: connect with auth: {token}")
        })?,
    };
    let caller = state.hub.caller(principal, Source::Socketio);
    let resume = Resume {
        since: auth.since,
        epoch: auth.epoch,
    };
    let patterns = match &auth.channels {
        Some(c) => c.patterns()?,
        None => Vec::new(),
    };
    let session = caller.open(info, &patterns, &resume, |_| Ok(()), |_, _| None)?;
    Ok(Conn {
        handle: session.handle().clone(),
        session: Mutex::new(Some(session)),
        resume,
        seen: Mutex::new(patterns.into_iter().collect()),
        gone: CancellationToken::new(),
    })
}

/// The namespace is connected: greet, and start moving events.
fn connected(state: AppState, s: SocketRef) {
    let Some(ConnRef(conn)) = s.extensions.get::<ConnRef>() else {
        let _ = s.disconnect();
        return;
    };
    let Some(session) = conn
        .session
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        let _ = s.disconnect();
        return;
    };
    let _ = s.emit(
        "connection_established",
        &json!({"data": {"connection_id": s.id.to_string()}}),
    );
    let tracker = state.tasks.clone();
    tracker.spawn(pump(state, s, session, conn.gone.clone()));
}

/// Moves the session's events to the socket until either side ends. When socketioxide's buffer for the socket
/// is full, this task (and only it) waits for the socket to drain; meanwhile the bus keeps queueing for it, and
/// if the socket does not catch up the bus cuts the session off as a slow consumer, and the socket is
/// disconnected. Nobody else ever waits for it.
async fn pump(state: AppState, s: SocketRef, mut session: Session, gone: CancellationToken) {
    let shutdown = state.shutdown.clone();
    let cut = session.cut();
    let mut held: Option<Event> = None;
    loop {
        let e = match held.take() {
            Some(e) => e,
            None => {
                let d = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = gone.cancelled() => return,
                    d = session.next() => d,
                };
                match d {
                    Some(Delivery::Event(e)) => e,
                    Some(Delivery::Control(_)) => continue,
                    // The bus cut the session off: a slow consumer.
                    None => break,
                }
            }
        };
        match s.emit(e.event(), e.envelope()) {
            Ok(()) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                held = Some(e);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = gone.cancelled() => return,
                    () = cut.cancelled() => break,
                    () = tokio::time::sleep(DRAIN_POLL) => {}
                }
            }
            Err(_) => return,
        }
    }
    drop(session);
    if cut.is_cancelled() {
        // A namespace `disconnect` would stop socket.io-client from reconnecting by itself (and cannot be queued
        // to a client that does not read): close the connection under it, so it reconnects and resumes.
        tracing::info!(client = %s.id, "closing slow Socket.IO consumer");
        if let Some(ConnectInfo(peer)) = s.req_parts().extensions.get::<ConnectInfo<Peer>>() {
            peer.close();
            return;
        }
    }
    let _ = s.disconnect();
}

fn conn_of(s: &SocketRef) -> Option<Arc<Conn>> {
    s.extensions.get::<ConnRef>().map(|c| c.0)
}

fn error_ack(e: &Error) -> Value {
    json!({"status": "error", "code": e.code(), "message": e.message()})
}

/// `{room}` (or a bare string), with an optional `since` and `epoch`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RoomArg {
    Room {
        room: String,
        #[serde(default)]
        since: Option<u64>,
        #[serde(default)]
        epoch: Option<String>,
    },
    Name(String),
}

impl RoomArg {
    fn parts(self) -> (String, Option<u64>, Option<String>) {
        match self {
            RoomArg::Room { room, since, epoch } => (room, since, epoch),
            RoomArg::Name(room) => (room, None, None),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::invalid(what, format_args!("{e}")))
}

/// A client event: socketioxide has parsed the packet into its name, its first argument and an ack.
async fn on_event(
    s: SocketRef,
    socketioxide::extract::Event(event): socketioxide::extract::Event,
    TryData(v): TryData<Value>,
    ack: AckSender,
) {
    let Some(conn) = conn_of(&s) else { return };
    // An argument socketioxide cannot read (or none at all) is `null`, which the event then refuses in its ack.
    handle(&conn, &event, v.unwrap_or(Value::Null), |body| {
        let _ = ack.send(&body);
    })
    .await;
}

/// A client event as the adapter sees it, apart from socketioxide: `subscribe`, `unsubscribe`, `publish`,
/// `answer` or `debug:rooms` with its first argument. Its ack goes to `ack` (a subscribe's from inside the
/// subscribe, ahead of the room's replay); an event of another name gets none.
pub(crate) async fn handle(conn: &Conn, event: &str, v: Value, ack: impl FnOnce(Value)) {
    match event {
        "subscribe" => subscribe(conn, v, ack),
        "unsubscribe" => ack(unsubscribe(conn, v).unwrap_or_else(|e| error_ack(&e))),
        "publish" => match parse::<NewEvent>(v, "publish") {
            Ok(ev) => ack(committed(conn.handle.publish(ev)).await),
            Err(e) => ack(error_ack(&e)),
        },
        "answer" => match parse::<AnswerArg>(v, "answer") {
            Ok(a) => ack(committed(conn.handle.answer(a.question_id, a.answer)).await),
            Err(e) => ack(error_ack(&e)),
        },
        "debug:rooms" => {
            let rooms: Vec<String> = conn
                .handle
                .subscriptions()
                .iter()
                .map(ToString::to_string)
                .collect();
            ack(json!(rooms));
        }
        _ => {}
    }
}

fn subscribe(conn: &Conn, v: Value, ack: impl FnOnce(Value)) {
    let mut ack = Some(ack);
    let result = (|| {
        let (room, since, epoch) = parse::<RoomArg>(v, "room")?.parts();
        let pattern = Pattern::parse(&room)?;
        let first = conn
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pattern.clone());
        let resume = match (since, first) {
            (Some(since), _) => Resume {
                since: Some(since),
                epoch,
            },
            (None, true) => conn.resume.clone(),
            (None, false) => Resume::default(),
        };
        // Acked from inside the subscribe, so the ack goes out ahead of the room's replay.
        conn.handle.subscribe(pattern, &resume, |r| {
            if let Some(a) = ack.take() {
                let mut body = json!({"status": "success", "room": room});
                if let Some(rec) = r.recovered {
                    body["recovered"] = json!(rec);
                }
                a(body);
            }
            None
        })
    })();
    if let (Err(e), Some(a)) = (result, ack) {
        a(error_ack(&e));
    }
}

fn unsubscribe(conn: &Conn, v: Value) -> Result<Value, Error> {
    let (room, _, _) = parse::<RoomArg>(v, "room")?.parts();
    let existed = conn.handle.unsubscribe(&Pattern::parse(&room)?);
    Ok(json!({"status": "success", "room": room, "existed": existed}))
}

async fn committed(write: impl Future<Output = Result<Published, Error>>) -> Value {
    match write.await {
        Ok(p) => json!({"status": "success", "seq": p.seq}),
        Err(e) => error_ack(&e),
    }
}

#[derive(Deserialize)]
struct AnswerArg {
    question_id: String,
    answer: Value,
}
