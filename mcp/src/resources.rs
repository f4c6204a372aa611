//! Resources (SPEC §8): `switchboard://agents`, `switchboard://agents/{id}` and `switchboard://events`, read as
//! the caller, and one way to follow changes to them ([`follow_changes`]) for both subscription eras: legacy
//! `resources/subscribe` sessions and 2026-07-28 `subscriptions/listen`.
//!
//! Notifications come from a bus session the caller opened with [`Caller::follow`], so changes made over REST,
//! WebSocket or any other transport reach MCP subscribers, and only changes on channels the caller may read.

use std::future::Future;

use rmcp::model::{
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::SubscriptionSink;
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use serde::Serialize;
use switchboard_core::{
    AgentQuery, Caller, Delivery, Error, ErrorKind, Event, EventsQuery, Session,
};

/// The resource URI of the agent list.
pub const AGENTS_URI: &str = "switchboard://agents";
/// The resource URI of the recent event log.
pub const EVENTS_URI: &str = "switchboard://events";
/// The URI template of one agent.
pub(crate) const AGENT_TEMPLATE: &str = "switchboard://agents/{id}";
const AGENT_PREFIX: &str = "switchboard://agents/";
/// Agents a resource read lists.
const AGENTS_LISTED: usize = 500;
/// Events the events resource shows.
const EVENTS_SHOWN: usize = 100;

/// The resource URI of one agent.
pub(crate) fn agent_uri(id: &str) -> String {
    format!("{AGENT_PREFIX}{id}")
}

/// A core error as an MCP protocol error, with the core's error body as its data.
pub(crate) fn mcp_err(e: Error) -> McpError {
    let data = Some(e.body());
    match e.kind() {
        ErrorKind::NotFound => McpError::resource_not_found(e.message().to_owned(), data),
        ErrorKind::Internal | ErrorKind::Unavailable | ErrorKind::InsufficientStorage => {
            McpError::internal_error(e.message().to_owned(), data)
        }
        _ => McpError::invalid_request(e.message().to_owned(), data),
    }
}

/// Is `uri` one of ours?
pub(crate) fn check_uri(uri: &str) -> Result<(), McpError> {
    let agent = uri
        .strip_prefix(AGENT_PREFIX)
        .is_some_and(|id| !id.is_empty());
    if uri == AGENTS_URI || uri == EVENTS_URI || agent {
        Ok(())
    } else {
        Err(McpError::resource_not_found(
            format!("no such resource {uri}"),
            None,
        ))
    }
}

fn json_text(v: &impl Serialize, uri: String) -> ReadResourceResponse {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("application/json"),
    ])
    .into()
}

/// The agents a resource shows: the first [`AGENTS_LISTED`].
fn agents_listed() -> AgentQuery {
    AgentQuery {
        limit: Some(AGENTS_LISTED),
        ..Default::default()
    }
}

/// The fixed resources, and one per agent the caller may read.
pub(crate) async fn list(caller: &Caller) -> Result<Vec<Resource>, McpError> {
    let mut out = vec![
        Resource::new(AGENTS_URI, "agents")
            .with_mime_type("application/json")
            .with_description("Every agent"),
        Resource::new(EVENTS_URI, "events")
            .with_mime_type("application/json")
            .with_description("The 100 newest events"),
    ];
    // A caller that may not read agents still has the event log.
    if let Ok(page) = caller.list_agents(agents_listed()).await {
        out.extend(page.agents.iter().map(|a| {
            Resource::new(agent_uri(&a.id), format!("agent {}", a.name))
                .with_mime_type("application/json")
        }));
    }
    Ok(out)
}

/// Reads one resource as the caller.
pub(crate) async fn read(caller: &Caller, uri: String) -> Result<ReadResourceResponse, McpError> {
    if uri == AGENTS_URI {
        let page = caller.list_agents(agents_listed()).await.map_err(mcp_err)?;
        return Ok(json_text(&page, uri));
    }
    if uri == EVENTS_URI {
        let q = EventsQuery {
            limit: Some(EVENTS_SHOWN),
            ..Default::default()
        };
        let page = caller.events(q).await.map_err(mcp_err)?;
        return Ok(json_text(&page, uri));
    }
    if let Some(id) = uri.strip_prefix(AGENT_PREFIX) {
        let agent = caller.get_agent(id).await.map_err(mcp_err)?;
        return Ok(json_text(&agent, uri));
    }
    Err(McpError::resource_not_found(
        format!("no such resource {uri}"),
        None,
    ))
}

/// The resource URIs an event changes, and whether the agent list itself changed.
fn affected(e: &Event) -> (Vec<String>, bool) {
    let mut uris = vec![EVENTS_URI.to_owned()];
    let mut list_changed = false;
    if let Some(id) = e.channel().strip_prefix("agent:")
        && e.event().starts_with("agent.")
    {
        uris.push(agent_uri(id));
        uris.push(AGENTS_URI.to_owned());
        list_changed = matches!(e.event(), "agent.created" | "agent.deleted");
    }
    (uris, list_changed)
}

/// Where resource notifications go: a legacy session's peer, or a `subscriptions/listen` stream.
pub(crate) trait ChangeSink {
    /// `notifications/resources/updated`; false once the other end is gone.
    fn updated(&self, uri: String) -> impl Future<Output = bool> + Send;
    /// `notifications/resources/list_changed`; false once the other end is gone.
    fn list_changed(&self) -> impl Future<Output = bool> + Send;
}

impl ChangeSink for Peer<RoleServer> {
    async fn updated(&self, uri: String) -> bool {
        !self.is_transport_closed()
            && self
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
                .is_ok()
    }
    async fn list_changed(&self) -> bool {
        !self.is_transport_closed() && self.notify_resource_list_changed().await.is_ok()
    }
}

impl ChangeSink for SubscriptionSink {
    async fn updated(&self, uri: String) -> bool {
        self.notify_resource_updated(uri).await.is_ok()
    }
    async fn list_changed(&self) -> bool {
        self.notify_resource_list_changed().await.is_ok()
    }
}

/// Why [`follow_changes`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `stop` resolved.
    Stopped,
    /// The client is gone: nothing more can reach it.
    SinkGone,
    /// The bus ended the session (the hub is stopping, or the client fell too far behind).
    ByTheBus,
}

/// Follows `session` and tells `sink` about every change to a resource `wants`, and about changes to the agent
/// list when `list_changed`, until `stop` resolves, the sink goes away or the bus ends the session.
pub(crate) async fn follow_changes(
    mut session: Session,
    stop: impl Future<Output = ()>,
    wants: impl Fn(&str) -> bool,
    list_changed: bool,
    sink: impl ChangeSink,
) -> Ended {
    tokio::pin!(stop);
    loop {
        let d = tokio::select! {
            () = &mut stop => return Ended::Stopped,
            d = session.next() => d,
        };
        let e = match d {
            Some(Delivery::Event(e)) => e,
            Some(Delivery::Control(_)) => continue,
            None => return Ended::ByTheBus,
        };
        let (uris, changed) = affected(&e);
        for uri in uris.into_iter().filter(|u| wants(u)) {
            if !sink.updated(uri).await {
                return Ended::SinkGone;
            }
        }
        if changed && list_changed && !sink.list_changed().await {
            return Ended::SinkGone;
        }
    }
}
