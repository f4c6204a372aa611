//! The prompts (SPEC §8): ready-made requests to the IDE's model with the hub's data already in them. Each one
//! reads the hub as the request's [`Caller`](switchboard_core::Caller), like the tools, so a prompt holds only what
//! its caller may read and fails as the same call would over REST. Arguments are checked before anything is read:
//! an unknown prompt, a missing or unknown argument and a bad channel are MCP errors (`invalid_params`).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{GetPromptResult, PromptMessage, Role};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;
use switchboard_core::{Error, ErrorKind, Event, EventsQuery};

use crate::resources::{agent_uri, mcp_err};
use crate::server::SwitchboardMcp;

/// Events `inspect_agent` shows.
const AGENT_EVENTS: usize = 20;
/// Events `summarize_events` reads.
const SUMMARIZED_EVENTS: usize = 100;
/// Most bytes of event JSON one prompt carries: a few events near the 64 KiB payload limit would otherwise fill a
/// model's context. The newest events that fit are kept, and the prompt says how many older ones were left out.
const EVENTS_BUDGET: usize = 64 * 1024;

/// `inspect_agent`'s argument.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InspectAgentArgs {
    /// The agent's id (a UUID).
    pub(crate) id: String,
}

/// `summarize_events`'s argument.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SummarizeEventsArgs {
    /// A channel or pattern such as `agent:*` (default: every channel you may read).
    pub(crate) channel: Option<String>,
}

/// A core error as a prompt's MCP error: a bad argument is `invalid_params`; the rest as for resources, with the
/// core's error body as the data.
fn prompt_err(e: Error) -> McpError {
    match e.kind() {
        ErrorKind::Invalid | ErrorKind::BadRequest => {
            McpError::invalid_params(e.message().to_owned(), Some(e.body()))
        }
        _ => mcp_err(e),
    }
}

/// How many of `lines` (oldest first) to keep, from the newest back, so that they fit in `budget` bytes.
fn newest_that_fit(lines: &[&str], budget: usize) -> usize {
    let mut used = 0;
    lines
        .iter()
        .rev()
        .take_while(|l| {
            used += l.len() + 1;
            used <= budget
        })
        .count()
}

/// `events` (oldest first) as a message: one JSON object a line, the newest that fit in [`EVENTS_BUDGET`].
fn events_text(events: &[Event], whose: &str) -> String {
    if events.is_empty() {
        return format!("There are no events {whose} yet.");
    }
    let lines: Vec<&str> = events.iter().map(|e| e.envelope().get()).collect();
    let kept = &lines[lines.len() - newest_that_fit(&lines, EVENTS_BUDGET)..];
    let mut text = format!(
        "The latest {} events {whose}, oldest first, one JSON object a line:\n```json\n{}\n```",
        kept.len(),
        kept.join("\n")
    );
    let left_out = lines.len() - kept.len();
    if left_out > 0 {
        text.push_str(&format!(
            "\n{left_out} older events are left out for length; the recent_events tool reads them."
        ));
    }
    text
}

// `#[prompt]` adds an undocumented `pub fn <name>_prompt_attr()` (rmcp-macros 3.11; `#[tool]` documents its own).
#[allow(missing_docs)]
#[prompt_router(vis = "pub(crate)")]
impl SwitchboardMcp {
    /// Look into one agent: its current state and its latest events, and what to make of them.
    #[prompt(name = "inspect_agent", title = "Inspect an agent")]
    async fn inspect_agent(
        &self,
        Parameters(a): Parameters<InspectAgentArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, McpError> {
        let caller = self.caller(&ctx);
        let agent = caller.get_agent(&a.id).await.map_err(prompt_err)?;
        let channel = format!("agent:{}", agent.id);
        let q = EventsQuery {
            channel: Some(channel.clone()),
            limit: Some(AGENT_EVENTS),
            ..Default::default()
        };
        let page = caller.events(q).await.map_err(prompt_err)?;
        let ask = format!(
            "Look into the Switchboard agent {:?} (id {}, status {:?}, version {}). Its current state is attached, \
             and its latest events on {channel} follow. Say what it is doing and has been doing, whether anything \
             looks wrong (a status its events contradict, errors, no activity for a long time, a config that does \
             not fit its purpose), and what to do next. The Switchboard tools (get_agent, recent_events, \
             wait_for_event, update_agent) fetch more or act on it.",
            agent.name, agent.id, agent.status, agent.version
        );
        let state = serde_json::to_string_pretty(&agent).map_err(|e| {
            McpError::internal_error(format!("could not write the agent as JSON: {e}"), None)
        })?;
        Ok(GetPromptResult::new(vec![
            PromptMessage::new_text(Role::User, ask),
            PromptMessage::new_resource(
                Role::User,
                agent_uri(&agent.id),
                Some("application/json".into()),
                Some(state),
                None,
                None,
                None,
            ),
            PromptMessage::new_text(
                Role::User,
                events_text(&page.events, &format!("on {channel}")),
            ),
        ])
        .with_description(format!("The agent {:?} and its latest events", agent.name)))
    }

    /// Summarise the recent events of a channel or pattern, or of every channel you may read.
    #[prompt(name = "summarize_events", title = "Summarize recent events")]
    async fn summarize_events(
        &self,
        Parameters(a): Parameters<SummarizeEventsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, McpError> {
        let whose = match &a.channel {
            Some(c) => format!("on {c}"),
            None => "on the channels I may read".to_owned(),
        };
        let q = EventsQuery {
            channel: a.channel,
            limit: Some(SUMMARIZED_EVENTS),
            ..Default::default()
        };
        let page = self.caller(&ctx).events(q).await.map_err(prompt_err)?;
        let ask = format!(
            "Summarise what happened in these events from the Switchboard hub {whose}: the main activity, who \
             caused it (each event's `source`: rest, ws, mcp, …), anything that failed or looks unusual, and what \
             is still open. Keep it short, and give an event's seq when you point at it."
        );
        Ok(GetPromptResult::new(vec![
            PromptMessage::new_text(Role::User, ask),
            PromptMessage::new_text(Role::User, events_text(&page.events, &whose)),
        ])
        .with_description(format!("The latest events {whose}, to summarise")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_events_that_fit_are_kept() {
        let lines = ["a".repeat(10), "b".repeat(10), "c".repeat(10)];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        // Each line costs its length and a newline.
        assert_eq!(newest_that_fit(&lines, 33), 3);
        assert_eq!(newest_that_fit(&lines, 32), 2);
        assert_eq!(newest_that_fit(&lines, 11), 1);
        assert_eq!(newest_that_fit(&lines, 10), 0);
    }
}
