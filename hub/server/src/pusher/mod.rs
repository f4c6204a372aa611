//! The Pusher protocol, version 7 (SPEC §7), so `pusher-js` and the `pusher` server SDKs work unchanged.
//!
//! - this module: the WebSocket at `/app/{key}`: the connection's checks (key, protocol, caller, cap), and
//!   [`PusherWire`], the frames spoken over the shared connection loop ([`crate::ws::run`]).
//! - [`api`]: the signed HTTP API (`/apps/{app_id}/…`), the built-in `/pusher/auth` and `/pusher/user-auth`, and
//!   `GET /api/pusher/config`.
//!
//! Channels are spelled for Pusher by [`switchboard_core::pusher::to_wire`] (`agent:7f3c` is `agent;7f3c`).
//! Signatures are checked in the core ([`SessionHandle::subscribe_signed`], [`SessionHandle::sign_in`]); a client
//! event is [`SessionHandle::client_event`]. Close codes keep pusher-js reconnecting wherever the client can
//! recover: 4100 for a slow consumer (back off), 4200 on shutdown and 4201 on idle (at once); 40xx only for what
//! it cannot fix (a wrong key 4001, an unsupported protocol 4007, no credentials on a token hub 4009).

pub mod api;

use std::collections::HashMap;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_core::pusher::{from_wire, to_wire};
use switchboard_core::{
    ClientInfo, Error, ErrorKind, Event, NewEvent, PresenceMember, Principal, Resume,
    SessionHandle, Source, Subscribed,
};

use crate::connect::origin;
use crate::error::{ApiPath, ApiResult};
use crate::state::AppState;
use crate::ws::{Closing, Reply, Wire, upgraded};

/// Seconds of silence after which pusher-js pings (sent in `connection_established`).
pub const ACTIVITY_TIMEOUT_S: u64 = 30;

/// Close code: the app key is not this hub's.
const CLOSE_NO_APP: u16 = 4001;
/// Close code: a protocol version other than 5–7.
const CLOSE_PROTOCOL: u16 = 4007;
/// Close code: the hub requires credentials and the connection had none.
const CLOSE_UNAUTHORIZED: u16 = 4009;
/// Close code: over the connection cap (pusher-js retries after a back-off).
const CLOSE_OVER_CAPACITY: u16 = 4100;
/// Error code for a client event over the rate limit.
const RATE_LIMITED: u16 = 4301;

fn frame(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// `{"event":"pusher:error","data":{"code","message"}}`.
fn error_frame(code: Option<u16>, message: &str) -> Bytes {
    frame(&json!({"event": "pusher:error", "data": {"code": code, "message": message}}))
}

/// A random socket id, `digits.digits`, as pusher-js expects.
fn socket_id() -> String {
    let a = uuid::Uuid::new_v4().as_u128();
    format!("{}.{}", (a >> 64) as u32, a as u32)
}

/// `GET /app/{key}?protocol=7`: the Pusher WebSocket.
pub async fn connect(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    Query(q): Query<HashMap<String, String>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = crate::ws::configure(ws)?;
    if !state.hub.pusher().key_matches(&key) {
        return Ok(refuse(
            ws,
            CLOSE_NO_APP,
            "App key not known to this hub; see GET /api/pusher/config",
        ));
    }
    let protocol = q.get("protocol").and_then(|p| p.parse::<u32>().ok());
    if !protocol.is_some_and(|p| (5..=7).contains(&p)) {
        return Ok(refuse(
            ws,
            CLOSE_PROTOCOL,
            "Unsupported protocol version; this hub speaks 7",
        ));
    }
    let Some(Extension(principal)) = principal else {
        return Ok(refuse(
            ws,
            CLOSE_UNAUTHORIZED,
            "This hub requires a token, which a Pusher connection cannot present",
        ));
    };
    let caller = state.hub.caller(principal, Source::Pusher);
    let info = ClientInfo {
        id: socket_id(),
        transport: "pusher",
        origin: origin(&headers),
    };
    let established = frame(&json!({
        "event": "pusher:connection_established",
        "data": json!({"socket_id": info.id, "activity_timeout": ACTIVITY_TIMEOUT_S}).to_string(),
    }));
    let opened = caller.open(
        info,
        &[],
        &Resume::default(),
        |s| {
            s.send_control(established);
            Ok(())
        },
        |_, _| None,
    );
    let session = match opened {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::Unavailable => {
            return Ok(refuse(ws, CLOSE_OVER_CAPACITY, "Over capacity"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(upgraded(ws, state, session, PusherWire))
}

/// Accepts the upgrade only to say why the connection cannot stay: `pusher:error`, then a close with `code`.
fn refuse(ws: WebSocketUpgrade, code: u16, message: &'static str) -> Response {
    {
        ws.on_upgrade(move |mut socket: WebSocket| async move {
            let _ = socket
                .send(Message::Text(
                    Utf8Bytes::try_from(error_frame(Some(code), message)).unwrap_or_default(),
                ))
                .await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(message),
                })))
                .await;
        })
    }
}

/// The Pusher frames over the shared connection loop.
pub(crate) struct PusherWire;

/// A client frame: `{event, data, channel?}`; `data` an object or a JSON string.
#[derive(serde::Deserialize)]
struct ClientFrame {
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    channel: Option<String>,
}

/// `data`, unwrapped when it is a JSON string holding an object (some clients send it that way).
fn unwrap_data(data: Value) -> Value {
    match data {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        v => v,
    }
}

fn text_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// `pusher_internal:subscription_succeeded`, with the members for a presence channel.
fn succeeded(wire: &str, members: Option<&[PresenceMember]>) -> Bytes {
    let data = match members {
        None => json!({}),
        Some(list) => {
            let ids: Vec<&str> = list.iter().map(|m| m.user_id.as_str()).collect();
            let hash: serde_json::Map<String, Value> = list
                .iter()
                .map(|m| (m.user_id.clone(), m.user_info.clone()))
                .collect();
            json!({"presence": {"ids": ids, "hash": hash, "count": list.len()}})
        }
    };
    frame(&json!({
        "event": "pusher_internal:subscription_succeeded",
        "channel": wire,
        "data": data.to_string(),
    }))
}

/// `pusher:subscription_error {type, error, status}` for `channel`.
fn subscription_error(wire: &str, e: &Error) -> Bytes {
    let kind = match e.kind() {
        ErrorKind::Forbidden | ErrorKind::Unauthorized => "AuthError",
        _ => "SubscriptionError",
    };
    frame(&json!({
        "event": "pusher:subscription_error",
        "channel": wire,
        "data": {"type": kind, "error": e.message(), "status": e.kind().http_status()},
    }))
}

impl PusherWire {
    fn subscribe(session: &SessionHandle, data: &Value) -> Option<Bytes> {
        let Some(wire) = text_field(data, "channel") else {
            return Some(error_frame(None, "pusher:subscribe needs data.channel"));
        };
        let Some(channel) = from_wire(wire) else {
            let e = Error::invalid("channel", "is not a valid channel name");
            return Some(subscription_error(wire, &e));
        };
        let ack =
            |_: Subscribed, members: Option<&[PresenceMember]>| Some(succeeded(wire, members));
        match session.subscribe_signed(
            &channel,
            text_field(data, "auth"),
            text_field(data, "channel_data"),
            &Resume::default(),
            ack,
        ) {
            Ok(_) => None,
            Err(e) => Some(subscription_error(wire, &e)),
        }
    }

    fn client_event(session: &SessionHandle, f: ClientFrame) -> Reply {
        let Some(channel) = f.channel.as_deref().and_then(from_wire) else {
            return Reply::Now(Some(error_frame(
                None,
                "a client event needs a valid channel",
            )));
        };
        let publish = session.client_event(&channel, &f.event, unwrap_data(f.data));
        Reply::Later(Box::pin(async move {
            match publish.await {
                Ok(_) => None,
                Err(e) if e.code() == "rate_limited" => Some(error_frame(
                    Some(RATE_LIMITED),
                    "Client event rejected: over the rate limit (100/s, burst 200)",
                )),
                Err(e) => Some(error_frame(
                    None,
                    &format!("Client event rejected: {}", e.message()),
                )),
            }
        }))
    }
}

impl Wire for PusherWire {
    fn text(&mut self, text: &str, session: &SessionHandle) -> Reply {
        if text.len() > switchboard_core::limits::MAX_BODY_BYTES {
            return Reply::Now(Some(error_frame(
                None,
                "the message is over the 1 MiB limit",
            )));
        }
        let Ok(f) = serde_json::from_str::<ClientFrame>(text) else {
            return Reply::Now(Some(error_frame(
                None,
                "malformed message: send JSON {\"event\",\"data\"}",
            )));
        };
        match f.event.as_str() {
            "pusher:ping" => {
                Reply::Now(Some(frame(&json!({"event": "pusher:pong", "data": "{}"}))))
            }
            "pusher:pong" => Reply::Now(None),
            "pusher:subscribe" => Reply::Now(Self::subscribe(session, &unwrap_data(f.data))),
            "pusher:unsubscribe" => {
                let data = unwrap_data(f.data);
                if let Some(channel) = text_field(&data, "channel").and_then(from_wire) {
                    session.unsubscribe(&switchboard_core::Pattern::Exact(channel));
                }
                Reply::Now(None)
            }
            "pusher:signin" => {
                let data = unwrap_data(f.data);
                let (Some(user_data), Some(auth)) =
                    (text_field(&data, "user_data"), text_field(&data, "auth"))
                else {
                    return Reply::Now(Some(error_frame(
                        Some(CLOSE_UNAUTHORIZED),
                        "pusher:signin needs data.user_data and data.auth",
                    )));
                };
                Reply::Now(Some(match session.sign_in(user_data, auth) {
                    Ok(_) => frame(&json!({
                        "event": "pusher:signin_success",
                        "data": {"user_data": user_data},
                    })),
                    Err(e) => error_frame(Some(CLOSE_UNAUTHORIZED), e.message()),
                }))
            }
            e if e.starts_with("client-") => Self::client_event(session, f),
            e if e.starts_with("pusher:") || e.starts_with("pusher_internal:") => Reply::Now(None),
            e => Reply::Now(Some(error_frame(
                None,
                &format!("unsupported event {e:?}: clients send pusher:* or client-* events"),
            ))),
        }
    }

    fn binary(&mut self) -> Option<Bytes> {
        Some(error_frame(
            None,
            "binary frames are not supported; send JSON text",
        ))
    }

    fn event(e: &Event) -> &Bytes {
        e.pusher_frame()
    }

    fn close(why: Closing) -> (u16, &'static str) {
        match why {
            Closing::Shutdown => (4200, "hub shutting down; reconnect"),
            Closing::SlowConsumer => (4100, "slow consumer; reconnect after a back-off"),
            Closing::Terminated => (CLOSE_UNAUTHORIZED, "terminated by the app"),
            Closing::Idle => (4201, "no activity (pong) within the timeout"),
            // Not 4000: pusher-js takes that to mean "use TLS".
            Closing::TooBig => (4002, "message over the hard limit"),
        }
    }
}

/// The hub channel for a Pusher channel name, or a 422 naming `field`.
pub(crate) fn hub_channel(field: &str, wire: &str) -> Result<String, Error> {
    from_wire(wire).ok_or_else(|| {
        Error::invalid(
            field,
            format_args!("{wire:?} is not a channel: Pusher names spell the hub's ':' as ';'"),
        )
    })
}

/// The Pusher spelling of a hub channel.
pub(crate) fn wire_channel(channel: &str) -> String {
    to_wire(channel)
}

/// A Pusher event's `data` (a string) as hub event data: the JSON it holds, or the string itself.
pub(crate) fn event_data(data: Value) -> Value {
    unwrap_data(data)
}

/// Builds the hub event for one Pusher publish.
pub(crate) fn new_event(channel: String, name: String, data: Value) -> NewEvent {
    NewEvent::new(channel, name, event_data(data))
}
