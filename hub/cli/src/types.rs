//! `switchboard types`: TypeScript declarations for the events in the log, inferred from their payloads.
//!
//! [`generate`] pages through `GET /api/events` and folds every envelope into an [`Inference`]: one [`Shape`] per
//! event name, the merge of every payload logged under that name. [`Inference::render`] prints a discriminated union
//! over `event`. The output depends only on the set of logged payloads — everything is sorted, and neither the hub's
//! URL nor a timestamp is printed — so it can be checked in and diffed.
//!
//! One topic, inference and its rendering; past 500 lines only because about 230 of them are the unit tests of the
//! merge rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::Value;
use switchboard_core::limits::MAX_EVENTS_PAGE;
use switchboard_core::model::Source;

use crate::client::HubClient;

/// Containers nested deeper than this inside `data` are typed `unknown`: a bound on the output's size, and real
/// payloads are rarely deeper.
pub const MAX_DEPTH: usize = 8;

/// Every [`Source`], for the `EventSource` union (a unit test fails when one is added and missing here).
const SOURCES: [Source; 8] = [
    Source::Rest,
    Source::Mcp,
    Source::Ws,
    Source::Socketio,
    Source::Pusher,
    Source::Webhook,
    Source::Watcher,
    Source::System,
];

/// Names the output declares itself; an event's interface never takes one of them.
const RESERVED: [&str; 5] = [
    "EventSource",
    "EventEnvelope",
    "SwitchboardEvent",
    "EventName",
    "EventData",
];

/// Fetches every event on channels matching `channel` and renders their types.
///
/// # Errors
/// When the hub does not answer or refuses the read (a bad pattern, a token that may not read it).
pub async fn generate(client: &HubClient, channel: &str) -> Result<String> {
    let mut inference = Inference::default();
    let mut since = 0;
    loop {
        let path = format!(
            "/api/events?channel={}&since={since}&limit={MAX_EVENTS_PAGE}",
            query_escape(channel)
        );
        let page = client.get(&path).await?;
        let events = page["events"]
            .as_array()
            .with_context(|| format!("the hub's answer has no events: {page}"))?;
        for event in events {
            inference.add(event);
        }
        match events.last().and_then(|e| e["seq"].as_u64()) {
            Some(last) if events.len() >= MAX_EVENTS_PAGE => since = last,
            _ => break,
        }
    }
    eprintln!(
        "switchboard types: read {} logged event(s)",
        inference.events
    );
    Ok(inference.render(channel))
}

/// Percent-encodes a query value (channel patterns may hold `=`, `;`, `,`, `@`).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~*:".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The merged shape of every JSON value seen at one place in the payloads: each kind that occurred, so a mix of
/// kinds is a union.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Shape {
    null: bool,
    boolean: bool,
    number: bool,
    string: bool,
    /// The merged shape of every element of every array seen here; empty while no array had an element.
    array: Option<Box<Shape>>,
    object: Option<ObjectShape>,
    /// A container beyond [`MAX_DEPTH`]: the whole place is `unknown`.
    deep: bool,
}

/// The keys of every object seen at one place.
#[derive(Debug, Default, Clone, PartialEq)]
struct ObjectShape {
    /// How many objects were seen.
    samples: usize,
    /// Per key: in how many of them it occurred, and its merged shape. A key seen less often than `samples` is
    /// optional.
    fields: BTreeMap<String, (usize, Shape)>,
}

impl Shape {
    /// The shape of one value.
    pub fn of(v: &Value) -> Shape {
        let mut s = Shape::default();
        s.add(v, 0);
        s
    }

    /// Merges `v`, found `depth` containers deep, into this shape.
    pub fn add(&mut self, v: &Value, depth: usize) {
        match v {
            Value::Null => self.null = true,
            Value::Bool(_) => self.boolean = true,
            Value::Number(_) => self.number = true,
            Value::String(_) => self.string = true,
            Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => self.deep = true,
            Value::Array(items) => {
                let elem = self.array.get_or_insert_default();
                for item in items {
                    elem.add(item, depth + 1);
                }
            }
            Value::Object(map) => {
                let obj = self.object.get_or_insert_default();
                obj.samples += 1;
                for (k, v) in map {
                    let (seen, shape) = obj.fields.entry(k.clone()).or_default();
                    *seen += 1;
                    shape.add(v, depth + 1);
                }
            }
        }
    }

    /// The TypeScript members of the union, in a fixed order.
    fn members(&self, indent: usize) -> Vec<String> {
        if self.deep {
            return vec!["unknown".into()];
        }
        let mut out = Vec::new();
        if self.string {
            out.push("string".into());
        }
        if self.number {
            out.push("number".into());
        }
        if self.boolean {
            out.push("boolean".into());
        }
        if let Some(elem) = &self.array {
            out.push(match elem.members(indent).as_slice() {
                [] => "unknown[]".into(),
                [one] => format!("{one}[]"),
                many => format!("({})[]", many.join(" | ")),
            });
        }
        if let Some(obj) = &self.object {
            out.push(obj.render(indent));
        }
        if self.null {
            out.push("null".into());
        }
        out
    }

    /// The TypeScript type, its nested lines indented `indent` levels; `unknown` for a place never seen.
    pub fn render(&self, indent: usize) -> String {
        let members = self.members(indent);
        if members.is_empty() {
            "unknown".into()
        } else {
            members.join(" | ")
        }
    }
}

impl ObjectShape {
    fn render(&self, indent: usize) -> String {
        if self.fields.is_empty() {
            return "Record<string, never>".into();
        }
        let pad = "  ".repeat(indent + 1);
        let mut out = String::from("{\n");
        for (key, (seen, shape)) in &self.fields {
            let optional = if *seen < self.samples { "?" } else { "" };
            let ty = shape.render(indent + 1);
            let _ = writeln!(out, "{pad}{}{optional}: {ty};", property_key(key));
        }
        out.push_str(&"  ".repeat(indent));
        out.push('}');
        out
    }
}

/// `key` as a TypeScript property name: bare when it is an identifier, else a JSON string.
fn property_key(key: &str) -> String {
    let mut chars = key.chars();
    let ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ident {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// `agent.created` → `AgentCreated`: the ASCII letters and digits of the name, each run capitalised; a leading
/// `_` when that is empty or starts with a digit, so it is an identifier.
fn pascal_case(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The interface name of each event name, in the order of `names`: `AgentCreatedEvent`; when that is taken (by an
/// earlier name that converts the same way, or by a name the output declares) `AgentCreatedEvent2`, `…3`, ….
fn interface_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut taken: BTreeSet<String> = RESERVED.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    for name in names {
        let base = format!("{}Event", pascal_case(name));
        let mut candidate = base.clone();
        let mut n = 2;
        while taken.contains(&candidate) {
            candidate = format!("{base}{n}");
            n += 1;
        }
        taken.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

/// What the log says so far: how many events, and the merged payload shape per event name.
#[derive(Debug, Default)]
pub struct Inference {
    events: usize,
    by_name: BTreeMap<String, Shape>,
}

impl Inference {
    /// Adds one logged envelope; one without an `event` name is skipped.
    pub fn add(&mut self, envelope: &Value) {
        let Some(name) = envelope["event"].as_str() else {
            return;
        };
        self.events += 1;
        self.by_name
            .entry(name.to_owned())
            .or_default()
            .add(&envelope["data"], 0);
    }

    /// The declarations, for events read on channels matching `channel`.
    pub fn render(&self, channel: &str) -> String {
        let mut out = String::new();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        // No event count: the file stays the same while the log grows with events of known shapes.
        let _ = writeln!(
            out,
            "// Generated by `switchboard types --channel '{channel}'` from the events logged under {}.",
            plural(self.by_name.len(), "event name"),
        );
        out.push_str(
            "// Each payload's shape is inferred from the logged events: a field is optional (`?`) when some of them\n\
             // lack it. Do not edit; run the command again to update it.\n",
        );
        if self.events == 0 {
            out.push_str(
                "// No events were logged on these channels yet: publish some and run it again.\n",
            );
        }

        let mut sources: Vec<&str> = SOURCES.iter().map(|s| s.as_str()).collect();
        sources.sort_unstable();
        let sources: Vec<String> = sources.iter().map(|s| format!("\"{s}\"")).collect();
        let _ = write!(
            out,
            "\n/** Who caused an event. */\nexport type EventSource = {};\n",
            sources.join(" | ")
        );
        out.push_str(
            "\n/** What every event carries besides its name and payload. */\n\
             export interface EventEnvelope {\n\
             \x20 /** The event's position in the hub's log: strictly increasing, never reused. */\n\
             \x20 seq: number;\n\
             \x20 /** A UUID. */\n\
             \x20 id: string;\n\
             \x20 channel: string;\n\
             \x20 source: EventSource;\n\
             \x20 /** When it was committed (RFC 3339 UTC). */\n\
             \x20 ts: string;\n\
             \x20 /** The seq of the logged event this one re-publishes. */\n\
             \x20 replay_of?: number;\n\
             }\n",
        );

        let names = interface_names(self.by_name.keys().map(String::as_str));
        for ((event, shape), iface) in self.by_name.iter().zip(&names) {
            let _ = write!(
                out,
                "\nexport interface {iface} extends EventEnvelope {{\n  event: {};\n  data: {};\n}}\n",
                literal(event),
                shape.render(1)
            );
        }

        if names.is_empty() {
            out.push_str(
                "\nexport type SwitchboardEvent = never;\n\nexport type EventName = never;\n\n\
                 /** The payload type of each event name. */\nexport interface EventData {}\n",
            );
            return out;
        }
        out.push_str(
            "\n/** Every event, told apart by `event`. */\nexport type SwitchboardEvent =\n",
        );
        for iface in &names {
            let _ = writeln!(out, "  | {iface}");
        }
        out.pop();
        out.push_str(";\n\nexport type EventName =\n");
        for event in self.by_name.keys() {
            let _ = writeln!(out, "  | {}", literal(event));
        }
        out.pop();
        out.push_str(
            ";\n\n/** The payload type of each event name. */\nexport interface EventData {\n",
        );
        for (event, iface) in self.by_name.keys().zip(&names) {
            let _ = writeln!(out, "  {}: {iface}[\"data\"];", literal(event));
        }
        out.push_str("}\n");
        out
    }
}

/// A TypeScript string literal (a JSON string is one).
fn literal(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(values: &[Value]) -> String {
        let mut s = Shape::default();
        for v in values {
            s.add(v, 0);
        }
        s.render(0)
    }

    #[test]
    fn scalars_and_mixed_kinds_become_a_union_in_a_fixed_order() {
        assert_eq!(merged(&[json!(1), json!(2.5)]), "number");
        assert_eq!(merged(&[json!("a")]), "string");
        assert_eq!(merged(&[json!(true)]), "boolean");
        assert_eq!(merged(&[json!(null)]), "null");
        assert_eq!(
            merged(&[json!(null), json!(false), json!(1), json!("x")]),
            "string | number | boolean | null"
        );
        assert_eq!(merged(&[]), "unknown");
    }

    #[test]
    fn object_keys_merge_and_missing_ones_are_optional() {
        let got = merged(&[
            json!({"id": "a", "n": 1, "gone": null}),
            json!({"id": "b", "n": "two", "new": true}),
        ]);
        assert_eq!(
            got,
            "{\n  gone?: null;\n  id: string;\n  n: string | number;\n  new?: boolean;\n}"
        );
        // Present but null is not missing.
        assert_eq!(
            merged(&[json!({"a": null}), json!({"a": 1})]),
            "{\n  a: number | null;\n}"
        );
        assert_eq!(merged(&[json!({})]), "Record<string, never>");
        assert_eq!(merged(&[json!({}), json!({"a": 1})]), "{\n  a?: number;\n}");
    }

    #[test]
    fn array_elements_merge_and_empty_arrays_are_unknown() {
        assert_eq!(merged(&[json!([])]), "unknown[]");
        assert_eq!(merged(&[json!([]), json!(["a"])]), "string[]");
        assert_eq!(
            merged(&[json!([1, "a", null])]),
            "(string | number | null)[]"
        );
        assert_eq!(
            merged(&[json!([{"a": 1}, {"b": true}])]),
            "{\n  a?: number;\n  b?: boolean;\n}[]"
        );
        assert_eq!(merged(&[json!([[1], []])]), "number[][]");
        assert_eq!(merged(&[json!([]), json!(null)]), "unknown[] | null");
    }

    #[test]
    fn nested_objects_are_indented() {
        assert_eq!(
            merged(&[json!({"a": {"b": {"c": 1}}})]),
            "{\n  a: {\n    b: {\n      c: number;\n    };\n  };\n}"
        );
    }

    #[test]
    fn nesting_beyond_the_cap_is_unknown() {
        let mut deep = json!({"leaf": 1});
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        // MAX_DEPTH arrays, then an object at depth MAX_DEPTH.
        assert_eq!(
            Shape::of(&deep).render(0),
            format!("unknown{}", "[]".repeat(MAX_DEPTH))
        );
        // A scalar at that depth is still typed; one level less, the object is too.
        let mut shallow = json!({"leaf": 1});
        for _ in 0..MAX_DEPTH - 1 {
            shallow = json!([shallow]);
        }
        assert!(Shape::of(&shallow).render(0).contains("leaf: number;"));
        let mut scalar = json!(1);
        for _ in 0..MAX_DEPTH {
            scalar = json!([scalar]);
        }
        assert_eq!(
            Shape::of(&scalar).render(0),
            format!("number{}", "[]".repeat(MAX_DEPTH))
        );
    }

    #[test]
    fn keys_that_are_not_identifiers_are_quoted() {
        assert_eq!(property_key("ok_1$"), "ok_1$");
        assert_eq!(property_key("kebab-case"), "\"kebab-case\"");
        assert_eq!(property_key("1st"), "\"1st\"");
        assert_eq!(property_key(""), "\"\"");
        assert_eq!(property_key("a\"b"), "\"a\\\"b\"");
        assert_eq!(property_key("é"), "\"é\"");
    }

    #[test]
    fn interface_names_are_pascal_case_and_deduplicated() {
        assert_eq!(pascal_case("agent.created"), "AgentCreated");
        assert_eq!(pascal_case("pusher:member_added"), "PusherMemberAdded");
        assert_eq!(pascal_case("3d.render"), "_3dRender");
        assert_eq!(pascal_case("..."), "_");
        assert_eq!(
            interface_names([
                "agent.created",
                "agent_created",
                "agent-created",
                "switchboard",
                "event.data"
            ]),
            [
                "AgentCreatedEvent",
                "AgentCreatedEvent2",
                "AgentCreatedEvent3",
                "SwitchboardEvent2",
                "EventDataEvent"
            ]
        );
    }

    #[test]
    fn every_source_is_in_the_union() {
        // Exhaustive: a new Source does not compile here until it is given a place in this chain.
        let next = |s: Option<Source>| match s {
            None => Some(Source::Rest),
            Some(Source::Rest) => Some(Source::Mcp),
            Some(Source::Mcp) => Some(Source::Ws),
            Some(Source::Ws) => Some(Source::Socketio),
            Some(Source::Socketio) => Some(Source::Pusher),
            Some(Source::Pusher) => Some(Source::Webhook),
            Some(Source::Webhook) => Some(Source::Watcher),
            Some(Source::Watcher) => Some(Source::System),
            Some(Source::System) => None,
        };
        let all: Vec<Source> = std::iter::successors(next(None), |s| next(Some(*s))).collect();
        assert_eq!(all, SOURCES);
    }

    fn envelope(event: &str, data: Value) -> Value {
        json!({"seq": 1, "id": "x", "channel": "c", "event": event, "data": data, "source": "rest", "ts": "t"})
    }

    #[test]
    fn the_output_does_not_depend_on_the_order_of_the_log() {
        let events = [
            envelope("b.two", json!({"x": [1]})),
            envelope("a.one", json!({"k": "v"})),
            envelope("b.two", json!({"x": [], "y": null})),
            envelope("a.one", json!(null)),
        ];
        let mut forward = Inference::default();
        events.iter().for_each(|e| forward.add(e));
        let mut backward = Inference::default();
        events.iter().rev().for_each(|e| backward.add(e));
        let text = forward.render("*");
        assert_eq!(text, backward.render("*"));
        assert!(
            text.contains("from the events logged under 2 event names"),
            "{text}"
        );
        assert!(
            text.contains(
                "export interface BTwoEvent extends EventEnvelope {\n  event: \"b.two\";\n  data: {\n    x: number[];\n    y?: null;\n  };\n}"
            ),
            "{text}"
        );
        assert!(
            text.contains("data: {\n    k: string;\n  } | null;"),
            "{text}"
        );
        assert!(text.contains("export type SwitchboardEvent =\n  | AOneEvent\n  | BTwoEvent;"));
        assert!(text.contains("export type EventName =\n  | \"a.one\"\n  | \"b.two\";"));
        assert!(text.contains("  \"a.one\": AOneEvent[\"data\"];\n"));
    }

    #[test]
    fn an_empty_log_is_a_valid_file_of_never() {
        let text = Inference::default().render("agent:*");
        assert!(
            text.contains("export type SwitchboardEvent = never;"),
            "{text}"
        );
        assert!(text.contains("No events were logged"), "{text}");
        assert!(
            text.contains("--channel 'agent:*'` from the events logged under 0 event names"),
            "{text}"
        );
    }

    #[test]
    fn channel_patterns_are_escaped_for_the_query() {
        assert_eq!(query_escape("agent:*"), "agent:*");
        assert_eq!(query_escape("a=b;c,d@e"), "a%3Db%3Bc%2Cd%40e");
    }
}
