//! The tools' arguments and results that are MCP's own. Agents, agent queries and patches, events and pages of
//! the log are the core's types, with the core's schemas and limits ([`switchboard_core::model`]); this file only
//! adds what a tool wraps around them (an id, a timeout), and the error text every tool returns.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::{AgentPatch, Error, ErrorKind, Event};

/// Longest `wait_for_event` wait, in seconds.
pub(crate) const MAX_WAIT_S: u64 = 300;
/// Longest `ask_user` wait, in seconds.
pub(crate) const MAX_ASK_S: u64 = 3600;

/// A core error as the text of a tool error: the same `{"error":{"code","message"}}` body REST answers with.
pub(crate) fn tool_err(e: Error) -> String {
    e.body().to_string()
}

/// A tool error of MCP's own (a wait that timed out or was cancelled), in the same shape.
pub(crate) fn wait_err(code: &'static str, message: String) -> String {
    tool_err(Error::new(ErrorKind::Unavailable, code, message))
}

/// Checks a timeout argument: 1–`max` seconds, `default` when absent.
pub(crate) fn timeout(given: Option<u64>, default: u64, max: u64) -> Result<u64, String> {
    match given.unwrap_or(default) {
        s if (1..=max).contains(&s) => Ok(s),
        _ => Err(tool_err(Error::invalid(
            "timeout_s",
            format_args!("must be 1–{max}"),
        ))),
    }
}

/// One agent, by id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdArgs {
    /// The agent's id (a UUID).
    pub id: String,
}

/// A merge-patch of one agent: only the fields given change. Its schema is the id beside the core's patch; it is
/// read by taking the id out and reading the rest as the patch, because serde's `flatten` would let a misspelt
/// field through.
#[derive(Debug, JsonSchema)]
pub struct UpdateAgentArgs {
    /// The agent's id (a UUID).
    pub id: String,
    /// The fields to change, and `expected_version`.
    #[serde(flatten)]
    pub patch: AgentPatch,
}

impl<'de> Deserialize<'de> for UpdateAgentArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fields = serde_json::Map::<String, Value>::deserialize(d)?;
        let id = match fields.remove("id") {
            Some(Value::String(id)) => id,
            Some(_) => return Err(D::Error::custom("id: must be a string")),
            None => return Err(D::Error::missing_field("id")),
        };
        let patch =
            serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
                match e.path().to_string().as_str() {
                    "." => D::Error::custom(e.into_inner()),
                    path => D::Error::custom(format_args!("{path}: {}", e.into_inner())),
                }
            })?;
        Ok(UpdateAgentArgs { id, patch })
    }
}

/// A deleted agent.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    /// Its id.
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

/// A published event's place in the log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Seq {
    /// The event's position in the log.
    pub seq: u64,
}

/// What `wait_for_event` waits for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// A channel or pattern such as `agent:*`.
    pub channel: String,
    /// Only this event name.
    pub event: Option<String>,
    /// Also consider logged events after this seq (default: only events from now on).
    pub since: Option<u64>,
    /// Seconds to wait, 1–300 (default 60).
    pub timeout_s: Option<u64>,
}

/// `{event}` when one matched, or `{timed_out: true}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WaitOut {
    /// The first matching event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// True when nothing matched in time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
}

/// What `ask_user` asks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskArgs {
    /// What to ask the user, 1–4000 characters.
    pub question: String,
    /// Where the question is published (default `questions`).
    pub channel: Option<String>,
    /// Seconds the question stays pending, 1–3600 (default 300); then it is withdrawn.
    pub timeout_s: Option<u64>,
    /// The choices, when the answer is one of them (1–20): buttons in the window, an enum in the IDE's form.
    pub options: Option<Vec<String>>,
    /// Where to ask: `hub` (the window and webapps), `ide` (this MCP client's user, through elicitation), or
    /// `both` (default); the first answer wins.
    pub via: Option<switchboard_core::Via>,
    /// A key of the asker's: asking again with the same key (after a call was cut off) joins the pending question
    /// or returns its answer, instead of asking twice.
    pub key: Option<String>,
}

/// The user's answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AnswerOut {
    /// What the user answered (any JSON, usually a string).
    pub answer: Value,
    /// Where the answer came from: ws, rest, …
    pub answered_by: String,
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// The hub's status.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    /// The hub's version.
    pub version: String,
    /// Its base URL.
    pub url: String,
    /// Open connections, of every transport.
    pub connections: usize,
    /// The newest seq in the log.
    pub last_seq: u64,
    /// Seconds since it started.
    pub uptime_s: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_update_takes_the_id_and_the_cores_patch() {
        let a: UpdateAgentArgs =
            serde_json::from_value(json!({"id": "x", "status": "busy", "expected_version": 2}))
                .unwrap();
        assert_eq!(
            (a.patch.status.as_deref(), a.patch.expected_version),
            (Some("busy"), Some(2))
        );
        assert!(
            serde_json::from_value::<UpdateAgentArgs>(json!({"id": "x", "stauts": "busy"}))
                .is_err(),
            "a typo is refused"
        );
        let schema = serde_json::to_value(schemars::schema_for!(UpdateAgentArgs)).unwrap();
        assert_eq!(schema["required"], json!(["id"]));
        assert!(schema["properties"].get("config").is_some(), "{schema}");
    }
}
