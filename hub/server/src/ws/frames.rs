//! The WebSocket frames (SPEC §4): what a client may send, and what each one gets back. Parsing and replying
//! only; each frame becomes one call on the connection's session, which checks it.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{
    Error, NewEvent, Pattern, Published, RequestKey, Resume, SessionHandle, Subscribed,
};

use crate::error::parse_json;

/// A frame for the client.
pub(super) fn frame(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// `{"type":"error","id","error":{"code","message"}}`.
pub(super) fn error_frame(id: &Value, e: &Error) -> Bytes {
    let mut v = e.body();
    v["type"] = json!("error");
    v["id"] = id.clone();
    frame(&v)
}

/// `{"type":"ack","ok":true,…}` for a subscription: with `recovered` when the client resumed, and the `id` of
/// the subscribe frame or the `channel` of a connect-time subscription.
pub(super) fn subscribed_ack(key: (&str, Value), s: Subscribed) -> Bytes {
    let mut v = json!({"type": "ack", "ok": true});
    v[key.0] = key.1;
    if let Some(r) = s.recovered {
        v["recovered"] = json!(r);
    }
    frame(&v)
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Subscribe {
        #[serde(default)]
        id: Value,
        #[serde(default)]
        channel: Option<String>,
        /// Several at once: one replay over all of them, in `seq` order.
        #[serde(default)]
        channels: Option<Vec<String>>,
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
        /// Published once however often the frame is sent again with it (SPEC §3, `Idempotency-Key`).
        #[serde(default)]
        idempotency_key: Option<String>,
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
pub(crate) enum Reply {
    Now(Option<Bytes>),
    Later(futures_util::future::BoxFuture<'static, Option<Bytes>>),
}

/// The `id` of a frame, read without trusting the rest of it, so even a wrong frame's error can be matched.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Value,
}

/// Handles one text frame from the client.
pub(super) fn handle_text(text: &str, session: &SessionHandle) -> Reply {
    if text.len() > MAX_BODY_BYTES {
        let e = Error::new(
            switchboard_core::ErrorKind::TooLarge,
            "payload_too_large",
            "the frame is over the 1 MiB limit",
        );
        return Reply::Now(Some(error_frame(&Value::Null, &e)));
    }
    let frame = parse_json::<ClientFrame>(text.as_bytes()).map_err(|e| match e.code() {
        "bad_json" => Error::bad_request("bad_frame", e.message().to_owned()),
        _ => Error::bad_request("invalid_frame", e.message().to_owned()),
    });
    match frame.and_then(|f| handle_frame(session, f)) {
        Ok(reply) => reply,
        Err(e) => {
            let id = serde_json::from_str::<IdOnly>(text).map_or(Value::Null, |f| f.id);
            Reply::Now(Some(error_frame(&id, &e)))
        }
    }
}

/// Acks a committed write, or reports why it failed, once it completes.
fn ack_when_committed(
    id: Value,
    write: impl Future<Output = Result<Published, Error>> + Send + 'static,
) -> Reply {
    Reply::Later(Box::pin(async move {
        match write.await {
            Ok(p) => Some(frame(
                &json!({"type": "ack", "id": id, "ok": true, "seq": p.seq}),
            )),
            Err(e) => Some(error_frame(&id, &e)),
        }
    }))
}

fn handle_frame(session: &SessionHandle, f: ClientFrame) -> Result<Reply, Error> {
    match f {
        ClientFrame::Subscribe {
            id,
            channel,
            channels,
            since,
            epoch,
        } => {
            let patterns = channel
                .iter()
                .chain(channels.iter().flatten())
                .map(|c| Pattern::parse(c))
                .collect::<Result<Vec<_>, _>>()?;
            if patterns.is_empty() {
                return Err(Error::bad_request(
                    "invalid_frame",
                    "a subscribe names `channel` or `channels`",
                ));
            }
            // One ack for the frame, queued by the bus itself ahead of the replay: made at the last pattern's
            // outcome. `recovered` is the same for every new subscription of the frame.
            let resume = Resume { since, epoch };
            let (total, mut seen) = (patterns.len(), 0);
            let mut agg = Subscribed {
                recovered: None,
                duplicate: true,
            };
            let mut id = Some(id);
            session.subscribe_all(&patterns, &resume, |_, s| {
                seen += 1;
                agg.recovered = agg.recovered.or(s.recovered);
                agg.duplicate &= s.duplicate;
                (seen == total)
                    .then(|| id.take())
                    .flatten()
                    .map(|id| subscribed_ack(("id", id), agg))
            })?;
            Ok(Reply::Now(None))
        }
        ClientFrame::Unsubscribe { id, channel } => {
            let existed = session.unsubscribe(&Pattern::parse(&channel)?);
            let ack = json!({"type": "ack", "id": id, "ok": true, "existed": existed});
            Ok(Reply::Now(Some(frame(&ack))))
        }
        ClientFrame::Publish {
            id,
            channel,
            event,
            data,
            idempotency_key,
        } => {
            let Some(key) = idempotency_key else {
                let write = session.publish(NewEvent::new(channel, event, data));
                return Ok(ack_when_committed(id, write));
            };
            // "The same body" of a frame is its channel, event and data: its `id` changes from one try to the next.
            let body = serde_json::to_vec(&(&channel, &event, &data)).map_err(Error::internal)?;
            let key = RequestKey::new(&key, "WS", "/ws publish", &body)?;
            let write = session.publish_keyed(NewEvent::new(channel, event, data), key);
            Ok(ack_when_committed(id, write))
        }
        ClientFrame::Ping { id } => Ok(Reply::Now(Some(frame(&json!({"type": "pong", "id": id}))))),
        ClientFrame::Answer {
            id,
            question_id,
            answer,
        } => Ok(ack_when_committed(id, session.answer(question_id, answer))),
    }
}
