//! Events (SPEC §2): who caused one ([`Source`]), what a publisher hands in ([`NewEvent`]), the logged envelope
//! every transport carries ([`Event`], serialised once and shared), and reads of the log ([`EventsQuery`],
//! [`EventsPage`]).

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::channel::{check_channel, check_event_name};
use crate::error::{Error, Result};
use crate::limits::MAX_PAYLOAD_BYTES;

/// Who caused an event (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The REST API.
    Rest,
    /// An MCP client (an IDE).
    Mcp,
    /// A WebSocket client.
    Ws,
    /// A Socket.IO client.
    Socketio,
    /// A Pusher client or the Pusher HTTP API.
    Pusher,
    /// A webhook (the dev-webhook endpoints, GitHub).
    Webhook,
    /// The file watcher.
    Watcher,
    /// The hub itself.
    System,
}

impl Source {
    /// The lowercase name, as in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rest => "rest",
            Source::Mcp => "mcp",
            Source::Ws => "ws",
            Source::Socketio => "socketio",
            Source::Pusher => "pusher",
            Source::Webhook => "webhook",
            Source::Watcher => "watcher",
            Source::System => "system",
        }
    }

    /// The source named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.into())).ok()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event a client publishes.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// A channel name (1–164 characters from `A-Za-z0-9_-=@,.;:`), e.g. `project:42`.
    pub channel: String,
    /// The event name (1–120 characters, no spaces), e.g. `build.done`.
    pub event: String,
    /// Any JSON, up to 64 KiB.
    #[serde(default)]
    pub data: Value,
}

impl NewEvent {
    /// An event on `channel`.
    pub fn new(channel: impl Into<String>, event: impl Into<String>, data: Value) -> Self {
        NewEvent {
            channel: channel.into(),
            event: event.into(),
            data,
        }
    }
}

/// A validated event on its way to the log; the store gives it a `seq`, an `id` and a `ts`.
#[derive(Debug, Clone)]
pub(crate) struct EventDraft {
    pub(crate) channel: String,
    pub(crate) event: String,
    pub(crate) data: Value,
    pub(crate) source: Source,
    /// A connection that must not receive it (its publisher, for Pusher client events and `socket_id`).
    pub(crate) except: Option<String>,
    /// The logged event this one re-publishes (`POST /api/events/{seq}/replay`).
    pub(crate) replay_of: Option<u64>,
}

impl EventDraft {
    /// Validates an event: the channel is a name (not a pattern), the event name is sane and `data` is at most
    /// 64 KiB.
    ///
    /// # Errors
    /// 422 naming the field, or 413 for oversized data.
    pub(crate) fn new(ev: NewEvent, source: Source) -> Result<Self> {
        check_channel("channel", &ev.channel)?;
        check_event_name(&ev.event)?;
        let n = serde_json::to_vec(&ev.data)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if n > MAX_PAYLOAD_BYTES {
            return Err(Error::too_large(format!(
                "data is {n} bytes; the limit is 64 KiB"
            )));
        }
        Ok(Self {
            channel: ev.channel,
            event: ev.event,
            data: ev.data,
            source,
            except: None,
            replay_of: None,
        })
    }
}

/// One logged event, cheap to clone and shared by every subscriber. Its JSON is made once, on first use.
#[derive(Clone)]
pub struct Event(Arc<EventInner>);

#[derive(Serialize)]
struct EventInner {
    seq: u64,
    id: String,
    channel: String,
    event: String,
    data: Box<RawValue>,
    source: Source,
    ts: String,
    /// The seq this event re-publishes, for a replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<u64>,
    #[serde(skip)]
    json: OnceLock<Bytes>,
    #[serde(skip)]
    ws_frame: OnceLock<Bytes>,
    #[serde(skip)]
    pusher_frame: OnceLock<Bytes>,
    #[serde(skip)]
    envelope: OnceLock<Box<RawValue>>,
    /// The connection id that must not receive it live; not logged.
    #[serde(skip)]
    except: Option<Box<str>>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.0.seq)
            .field("channel", &self.0.channel)
            .field("event", &self.0.event)
            .finish()
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The envelope's schema: what [`Event`] serialises to.
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct Envelope {
    /// The event's position in the log: strictly increasing, never reused.
    seq: u64,
    /// A UUID.
    id: String,
    channel: String,
    event: String,
    /// Any JSON.
    data: Value,
    source: Source,
    /// RFC 3339 UTC.
    ts: String,
    /// For an event re-published by `POST /api/events/{seq}/replay`: the seq it copies (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay_of: Option<u64>,
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Event {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Event".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Envelope::json_schema(g)
    }
}

impl Event {
    /// Builds an event from stored parts. `data` must be valid JSON text.
    ///
    /// # Errors
    /// `Internal` if `data` is not JSON (a corrupted row).
    pub(crate) fn from_parts(
        seq: u64,
        id: String,
        channel: String,
        event: String,
        data: String,
        source: Source,
        ts: String,
    ) -> Result<Self> {
        let data = RawValue::from_string(data).map_err(Error::internal)?;
        Ok(Event(Arc::new(EventInner {
            seq,
            id,
            channel,
            event,
            data,
            source,
            ts,
            replay_of: None,
            json: OnceLock::new(),
            ws_frame: OnceLock::new(),
            pusher_frame: OnceLock::new(),
            envelope: OnceLock::new(),
            except: None,
        })))
    }

    /// The same event, not to be delivered live to connection `except`. Only for a freshly committed event.
    pub(crate) fn except(self, except: Option<&str>) -> Self {
        match (except, Arc::try_unwrap(self.0)) {
            (Some(x), Ok(mut inner)) => {
                inner.except = Some(x.into());
                Event(Arc::new(inner))
            }
            (_, Ok(inner)) => Event(Arc::new(inner)),
            (_, Err(shared)) => Event(shared),
        }
    }

    /// The same event, marked as a replay of `seq`. Only for an event being built.
    pub(crate) fn replay_of(self, seq: Option<u64>) -> Self {
        match (seq, Arc::try_unwrap(self.0)) {
            (Some(_), Ok(mut inner)) => {
                inner.replay_of = seq;
                Event(Arc::new(inner))
            }
            (_, Ok(inner)) => Event(Arc::new(inner)),
            (_, Err(shared)) => Event(shared),
        }
    }

    /// The seq this event re-publishes, if it is a replay.
    pub fn replayed_from(&self) -> Option<u64> {
        self.0.replay_of
    }

    /// The connection id that must not receive this event live, if any.
    pub(crate) fn excluded(&self) -> Option<&str> {
        self.0.except.as_deref()
    }
    /// The position in the log.
    pub fn seq(&self) -> u64 {
        self.0.seq
    }
    /// The event's UUID.
    pub fn id(&self) -> &str {
        &self.0.id
    }
    /// The channel it was published on.
    pub fn channel(&self) -> &str {
        &self.0.channel
    }
    /// The event name.
    pub fn event(&self) -> &str {
        &self.0.event
    }
    /// The payload, as JSON text.
    pub fn data(&self) -> &RawValue {
        &self.0.data
    }
    /// Who caused it.
    pub fn source(&self) -> Source {
        self.0.source
    }
    /// When it was committed (RFC 3339 UTC).
    pub fn ts(&self) -> &str {
        &self.0.ts
    }
    /// The envelope as JSON, serialised once and shared.
    pub fn json(&self) -> &Bytes {
        self.0.json.get_or_init(|| {
            Bytes::from(serde_json::to_vec(&*self.0).expect("an event always serialises"))
        })
    }
    /// The envelope as raw JSON, for serialisers that embed it (Socket.IO), made once from [`Event::json`].
    pub fn envelope(&self) -> &RawValue {
        self.0.envelope.get_or_init(|| {
            let text = String::from_utf8_lossy(self.json()).into_owned();
            RawValue::from_string(text).expect("an envelope is JSON")
        })
    }
    /// The WebSocket frame `{"type":"event",…envelope}`, made once from [`Event::json`].
    pub fn ws_frame(&self) -> &Bytes {
        self.0.ws_frame.get_or_init(|| {
            let env = self.json();
            let mut v = Vec::with_capacity(env.len() + 16);
            v.extend_from_slice(br#"{"type":"event","#);
            v.extend_from_slice(&env[1..]);
            Bytes::from(v)
        })
    }
}

impl Event {
    /// The Pusher frame (SPEC §7), made once: `{"event","channel","data","seq"}` with the channel in its Pusher
    /// spelling and `data` as a JSON string, as Pusher sends it. Presence changes become
    /// `pusher_internal:member_added` / `member_removed`. `seq` is an addition pusher-js ignores.
    pub fn pusher_frame(&self) -> &Bytes {
        self.0.pusher_frame.get_or_init(|| {
            let event = match self.event() {
                crate::presence::MEMBER_ADDED => "pusher_internal:member_added",
                crate::presence::MEMBER_REMOVED => "pusher_internal:member_removed",
                e => e,
            };
            let frame = serde_json::json!({
                "event": event,
                "channel": crate::pusher::to_wire(self.channel()),
                "data": self.data().get(),
                "seq": self.seq(),
            });
            Bytes::from(serde_json::to_vec(&frame).expect("a frame always serialises"))
        })
    }
}

/// A read of the log.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A channel or pattern such as `agent:*`; absent means every channel the caller may read.
    #[serde(default)]
    pub channel: Option<String>,
    /// Only events after this seq, oldest first; absent means the newest `limit`.
    #[serde(default)]
    pub since: Option<u64>,
    /// Only events up to and including this seq (with or without `since`; from the start of the log without).
    #[serde(default)]
    pub until: Option<u64>,
    /// 1–1000 (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A page of the log.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The newest seq in the log when the page was read.
    pub last_seq: u64,
    /// The log's epoch: a different one means the log was reset.
    pub epoch: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ws_frame_is_envelope_with_type() {
        let e = Event::from_parts(
            7,
            "i".into(),
            "c".into(),
            "e".into(),
            "{\"a\":1}".into(),
            Source::Rest,
            "t".into(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(e.ws_frame()).unwrap();
        assert_eq!(
            v,
            json!({"type":"event","seq":7,"id":"i","channel":"c","event":"e","data":{"a":1},"source":"rest","ts":"t"})
        );
    }

    #[test]
    fn drafts_are_validated() {
        let big = json!("x".repeat(MAX_PAYLOAD_BYTES));
        let e = EventDraft::new(NewEvent::new("c", "e", big), Source::Rest).unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
        let e = EventDraft::new(NewEvent::new("a b", "e", Value::Null), Source::Rest).unwrap_err();
        assert_eq!(e.code(), "invalid_field");
        let e = EventDraft::new(NewEvent::new("c", "", Value::Null), Source::Rest).unwrap_err();
        assert!(e.message().starts_with("event"));
    }
}
