//! The domain: agents, their create/patch inputs and validation (SPEC §2), the event envelope, channel names and
//! subscription patterns.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Largest `config` object and largest event `data`, serialised.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// An agent as stored and as every transport shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub description: String,
    pub model: Option<String>,
    pub status: String,
    pub config: Map<String, Value>,
    pub tags: Vec<String>,
    /// 1 at create, +1 per update.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of a create. Unknown fields are refused so a typo is not silently dropped.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A JSON merge-patch (RFC 7396) of an agent. A field left out is unchanged; `null` clears the fields that may
/// be cleared (`description`, `model`, `tags`, keys of `config`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub model: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub status: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub config: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Value>,
    /// Optimistic concurrency, the body twin of `If-Match`.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`, so "absent" and "null" differ.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<()> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(Error::invalid(
            field,
            format_args!("must be {min}–{max} characters, got {n}"),
        ));
    }
    Ok(())
}

fn check_status(s: &str) -> Result<()> {
    let ok = (1..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "status",
            "must be a short lowercase word (a-z, 0-9, _ or -; ≤ 32)",
        ))
    }
}

fn check_config(c: &Map<String, Value>) -> Result<()> {
    let n = serde_json::to_vec(c).map(|v| v.len()).unwrap_or(usize::MAX);
    if n > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid(
            "config",
            format_args!("must serialise to ≤ 64 KiB, got {n} bytes"),
        ));
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<()> {
    if tags.len() > 32 {
        return Err(Error::invalid("tags", "at most 32 tags"));
    }
    for t in tags {
        check_len("tags", t, 1, 40)?;
    }
    Ok(())
}

fn check_model(m: &Option<String>) -> Result<()> {
    match m {
        Some(m) => check_len("model", m, 1, 120),
        None => Ok(()),
    }
}

impl NewAgent {
    /// Validates every field and builds the agent to insert.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming the first bad field.
    pub fn into_agent(self, id: String, now: &str) -> Result<Agent> {
        check_len("name", &self.name, 1, 120)?;
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be blank"));
        }
        let description = self.description.unwrap_or_default();
        check_len("description", &description, 0, 2000)?;
        check_model(&self.model)?;
        let status = self.status.unwrap_or_else(|| "idle".into());
        check_status(&status)?;
        let config = self.config.unwrap_or_default();
        check_config(&config)?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        Ok(Agent {
            id,
            name: self.name,
            description,
            model: self.model,
            status,
            config,
            tags,
            version: 1,
            created_at: now.into(),
            updated_at: now.into(),
        })
    }
}

fn as_string(field: &str, v: Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(Error::invalid(
            field,
            format_args!("must be a string, got {}", type_name(&other)),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// RFC 7396 merge of `patch` into `target`.
fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::Object(p) => {
                let slot = target.entry(k).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k, other);
            }
        }
    }
}

impl AgentPatch {
    /// Applies the patch to `agent`, validating every field it touches, and returns the names of the fields whose
    /// value changed. Does not touch `version` or `updated_at`.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming the first bad field; `agent` is then unspecified,
    /// so callers apply patches to a copy.
    pub fn apply(self, agent: &mut Agent) -> Result<Vec<&'static str>> {
        let mut changed = Vec::new();
        if let Some(v) = self.name {
            let name = as_string("name", v)?;
            check_len("name", &name, 1, 120)?;
            if name.trim().is_empty() {
                return Err(Error::invalid("name", "must not be blank"));
            }
            if name != agent.name {
                agent.name = name;
                changed.push("name");
            }
        }
        if let Some(v) = self.description {
            let d = if v.is_null() {
                String::new()
            } else {
                as_string("description", v)?
            };
            check_len("description", &d, 0, 2000)?;
            if d != agent.description {
                agent.description = d;
                changed.push("description");
            }
        }
        if let Some(v) = self.model {
            let m = if v.is_null() {
                None
            } else {
                Some(as_string("model", v)?)
            };
            check_model(&m)?;
            if m != agent.model {
                agent.model = m;
                changed.push("model");
            }
        }
        if let Some(v) = self.status {
            let s = as_string("status", v)?;
            check_status(&s)?;
            if s != agent.status {
                agent.status = s;
                changed.push("status");
            }
        }
        if let Some(v) = self.config {
            let mut next = agent.config.clone();
            match v {
                Value::Null => next.clear(),
                Value::Object(p) => merge_patch(&mut next, p),
                other => {
                    return Err(Error::invalid(
                        "config",
                        format_args!("must be an object, got {}", type_name(&other)),
                    ));
                }
            }
            check_config(&next)?;
            if next != agent.config {
                agent.config = next;
                changed.push("config");
            }
        }
        if let Some(v) = self.tags {
            let tags: Vec<String> = match v {
                Value::Null => Vec::new(),
                v => serde_json::from_value(v)
                    .map_err(|_| Error::invalid("tags", "must be an array of strings"))?,
            };
            check_tags(&tags)?;
            if tags != agent.tags {
                agent.tags = tags;
                changed.push("tags");
            }
        }
        Ok(changed)
    }
}

/// Who caused an event (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Rest,
    Mcp,
    Ws,
    Socketio,
    Pusher,
    Webhook,
    Watcher,
    System,
}

impl Source {
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
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.into())).ok()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-=@,.;:".contains(c)
}

/// Checks a channel name: 1–164 characters from `A-Za-z0-9_-=@,.;:`.
///
/// # Errors
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming `field`.
pub fn check_channel(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 164 || !name.chars().all(channel_char) {
        return Err(Error::invalid(
            field,
            "must be 1–164 characters from A-Za-z0-9_-=@,.;:",
        ));
    }
    Ok(())
}

/// Checks an event name: 1–120 printable characters.
///
/// # Errors
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming `event`.
pub fn check_event_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > 120 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            "event",
            "must be 1–120 characters without spaces or control characters",
        ));
    }
    Ok(())
}

/// True for channels that need authorization (`private-…`, `presence-…`).
pub fn is_private(channel: &str) -> bool {
    channel.starts_with("private-") || channel.starts_with("presence-")
}

/// A subscription: one channel, or every channel starting with a prefix (`agent:*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    Exact(String),
    /// The prefix before the trailing `*`; empty for `*`.
    Prefix(String),
}

impl Pattern {
    /// Parses a channel name or a prefix pattern ending in `*`.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming `channel`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.strip_suffix('*') {
            Some(p) if p.chars().all(channel_char) && p.len() < 164 => {
                Ok(Pattern::Prefix(p.into()))
            }
            Some(_) => Err(Error::invalid(
                "channel",
                "a pattern is a channel prefix followed by one trailing *",
            )),
            None => check_channel("channel", s).map(|_| Pattern::Exact(s.into())),
        }
    }
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Pattern::Exact(c) => c == channel,
            Pattern::Prefix(p) => channel.starts_with(p.as_str()),
        }
    }
    /// True when every channel this pattern matches is also matched by `self` (used for JWT `channels` claims).
    pub fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
            (Pattern::Exact(_), Pattern::Prefix(_)) => false,
            (Pattern::Prefix(p), Pattern::Exact(b)) | (Pattern::Prefix(p), Pattern::Prefix(b)) => {
                b.starts_with(p.as_str())
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(c) => f.write_str(c),
            Pattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// What a publisher hands in; the store gives it a `seq`, an `id` and a `ts`.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub channel: String,
    pub event: String,
    pub data: Value,
    pub source: Source,
}

impl EventDraft {
    /// Validates a client-supplied event: the channel is a name (not a pattern), the event name is sane and
    /// `data` is at most 64 KiB.
    ///
    /// # Errors
    /// 422 naming the field, or 413 for oversized data.
    pub fn new(
        channel: impl Into<String>,
        event: impl Into<String>,
        data: Value,
        source: Source,
    ) -> Result<Self> {
        let (channel, event) = (channel.into(), event.into());
        check_channel("channel", &channel)?;
        check_event_name(&event)?;
        let n = serde_json::to_vec(&data)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if n > MAX_PAYLOAD_BYTES {
            return Err(Error::too_large(format!(
                "data is {n} bytes; the limit is 64 KiB"
            )));
        }
        Ok(Self {
            channel,
            event,
            data,
            source,
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
    #[serde(skip)]
    json: OnceLock<Bytes>,
    #[serde(skip)]
    ws_frame: OnceLock<Bytes>,
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

impl Event {
    /// Builds an event from stored parts. `data` must be valid JSON text.
    ///
    /// # Errors
    /// `Internal` if `data` is not JSON (a corrupted row).
    pub fn from_parts(
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
            json: OnceLock::new(),
            ws_frame: OnceLock::new(),
        })))
    }
    pub fn seq(&self) -> u64 {
        self.0.seq
    }
    pub fn id(&self) -> &str {
        &self.0.id
    }
    pub fn channel(&self) -> &str {
        &self.0.channel
    }
    pub fn event(&self) -> &str {
        &self.0.event
    }
    pub fn data(&self) -> &RawValue {
        &self.0.data
    }
    pub fn source(&self) -> Source {
        self.0.source
    }
    pub fn ts(&self) -> &str {
        &self.0.ts
    }
    /// The envelope as JSON, serialised once and shared.
    pub fn json(&self) -> &Bytes {
        self.0.json.get_or_init(|| {
            Bytes::from(serde_json::to_vec(&*self.0).expect("an event always serialises"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_parse_match_and_cover() {
        let all = Pattern::parse("*").unwrap();
        let agents = Pattern::parse("agent:*").unwrap();
        let one = Pattern::parse("agent:1").unwrap();
        assert!(all.matches("x") && agents.matches("agent:1") && !agents.matches("global"));
        assert!(
            all.covers(&agents)
                && agents.covers(&one)
                && !one.covers(&agents)
                && !agents.covers(&all)
        );
        assert!(
            Pattern::parse("a*b").is_err()
                && Pattern::parse("").is_err()
                && Pattern::parse("sp ace").is_err()
        );
        assert!(Pattern::parse(&"x".repeat(165)).is_err());
    }

    #[test]
    fn patch_merges_and_reports_changes() {
        let mut a = NewAgent {
            name: "a".into(),
            config: Some(json!({"k": {"x": 1, "y": 2}}).as_object().cloned().unwrap()),
            ..Default::default()
        }
        .into_agent("id".into(), "now")
        .unwrap();
        let p: AgentPatch = serde_json::from_value(
            json!({"config": {"k": {"x": null, "z": 3}}, "model": null, "status": "busy"}),
        )
        .unwrap();
        let changed = p.apply(&mut a).unwrap();
        assert_eq!(changed, vec!["status", "config"]);
        assert_eq!(
            Value::Object(a.config.clone()),
            json!({"k": {"y": 2, "z": 3}})
        );
        let bad: AgentPatch = serde_json::from_value(json!({"status": "Not A Word"})).unwrap();
        assert_eq!(
            bad.apply(&mut a.clone()).unwrap_err().code(),
            "invalid_field"
        );
        assert!(serde_json::from_value::<AgentPatch>(json!({"nmae": "x"})).is_err());
    }

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
}
