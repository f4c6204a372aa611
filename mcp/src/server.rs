//! [`SwitchboardMcp`]: every tool and resource of SPEC §8, implemented once over the [`Hub`]. It is served at
//! `/mcp` ([`crate::http`]); `switchboard mcp` only bridges stdio to it ([`crate::bridge`]).
//!
//! Resource notifications come from the bus, so changes made over REST, WebSocket or any other transport reach
//! MCP subscribers: legacy sessions (protocol 2025-11-25, `resources/subscribe`) get them through a per-session
//! watcher, and 2026-07-28 clients through `subscriptions/listen`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
    ProgressNotificationParam, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{
    ErrorData as McpError, Json, Peer, RoleServer, ServerHandler, tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_core::{
    Agent, AgentPatch, AgentQuery, ClientInfo, Delivery, Error, Event, EventDraft, Hub, NewAgent,
    Pattern, Source, SubscribeOpts,
};
use tokio_util::sync::CancellationToken;

/// The resource URI of the agent list.
pub const AGENTS_URI: &str = "switchboard://agents";
/// The resource URI of the recent event log.
pub const EVENTS_URI: &str = "switchboard://events";
const AGENT_PREFIX: &str = "switchboard://agents/";
/// Longest `wait_for_event` wait.
const MAX_WAIT_S: u64 = 300;
/// Longest `ask_user` wait.
const MAX_ASK_S: u64 = 3600;

fn agent_uri(id: &str) -> String {
    format!("{AGENT_PREFIX}{id}")
}

/// What the server needs besides the hub.
#[derive(Debug, Clone)]
pub struct McpInfo {
    /// The hub's base URL, for `hub_status`.
    pub url: String,
}

/// The MCP server. One value per MCP session (the HTTP service makes one per session).
#[derive(Clone)]
pub struct SwitchboardMcp {
    hub: Hub,
    info: Arc<McpInfo>,
    /// Resource URIs this (legacy) session subscribed to.
    subs: Arc<Mutex<HashSet<String>>>,
    /// Stops this session's watcher when the last clone of the handler goes.
    _watcher: Arc<tokio_util::sync::DropGuard>,
    watcher_stop: CancellationToken,
    tool_router: ToolRouter<Self>,
}

/// A core error as the text of a tool error.
fn tool_err(e: Error) -> String {
    format!("{}: {}", e.code(), e.message())
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListAgentsArgs {
    /// Only agents with this status.
    pub status: Option<String>,
    /// Case-insensitive text to find in the name or description.
    pub q: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdArgs {
    /// The agent's id (a UUID).
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateAgentArgs {
    /// 1–120 characters.
    pub name: String,
    /// Up to 2000 characters.
    pub description: Option<String>,
    /// The model the agent runs on, up to 120 characters.
    pub model: Option<String>,
    /// A short lowercase word; default `idle`.
    pub status: Option<String>,
    /// Free-form settings, a JSON object up to 64 KiB.
    pub config: Option<serde_json::Map<String, Value>>,
    /// Up to 32 tags of up to 40 characters.
    pub tags: Option<Vec<String>>,
}

/// Keeps an explicit `null` apart from an absent field: absent is `None`, `null` is `Some(None)`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A merge-patch: only the fields given change; `null` clears `description`, `model`, `tags` or a `config` key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentArgs {
    /// The agent's id (a UUID).
    pub id: String,
    /// Fail with a version conflict unless the agent is at this version.
    pub expected_version: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub status: Option<Option<String>>,
    /// Merged into the current config (RFC 7396).
    #[serde(default, deserialize_with = "present")]
    pub config: Option<Option<serde_json::Map<String, Value>>>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Option<Vec<String>>>,
}

impl UpdateAgentArgs {
    fn patch(&self) -> AgentPatch {
        fn v<T: Serialize>(f: &Option<Option<T>>) -> Option<Value> {
            f.as_ref()
                .map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
        }
        AgentPatch {
            name: v(&self.name),
            description: v(&self.description),
            model: v(&self.model),
            status: v(&self.status),
            config: v(&self.config),
            tags: v(&self.tags),
            expected_version: None,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PublishArgs {
    /// A channel name, e.g. `project:42`.
    pub channel: String,
    /// The event name, e.g. `build.done`.
    pub event: String,
    /// Any JSON, up to 64 KiB.
    pub data: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Seq {
    /// The event's position in the log.
    pub seq: u64,
}

/// One event of the log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventOut {
    pub seq: u64,
    pub id: String,
    pub channel: String,
    pub event: String,
    pub data: Value,
    /// rest, mcp, ws, socketio, pusher, webhook, watcher or system.
    pub source: String,
    /// RFC 3339 UTC.
    pub ts: String,
}

impl From<&Event> for EventOut {
    fn from(e: &Event) -> Self {
        EventOut {
            seq: e.seq(),
            id: e.id().to_owned(),
            channel: e.channel().to_owned(),
            event: e.event().to_owned(),
            data: serde_json::from_str(e.data().get()).unwrap_or(Value::Null),
            source: e.source().as_str().to_owned(),
            ts: e.ts().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RecentArgs {
    /// A channel or pattern such as `agent:*` (default `*`).
    pub channel: Option<String>,
    /// Only events after this seq (default: the newest `limit`).
    pub since: Option<u64>,
    /// 1–1000 (default 50).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Events {
    pub events: Vec<EventOut>,
    /// The newest seq in the log.
    pub last_seq: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// What to ask the user, 1–4000 characters.
    pub question: String,
    /// Where the question is published (default `questions`).
    pub channel: Option<String>,
    /// Seconds to wait for an answer, 1–3600 (default 300).
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AnswerOut {
    /// What the user answered (any JSON, usually a string).
    pub answer: Value,
    /// Where the answer came from: ws, rest, …
    pub answered_by: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Status {
    pub version: String,
    pub url: String,
    pub connections: usize,
    pub last_seq: u64,
    pub uptime_s: u64,
}

/// Sends `notifications/progress` every second while a wait runs, when the client asked for progress.
struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    started: Instant,
    total_s: u64,
}

impl Progress {
    fn new(ctx: &RequestContext<RoleServer>, total_s: u64) -> Self {
        Progress {
            peer: ctx.peer.clone(),
            token: ctx.meta.get_progress_token(),
            started: Instant::now(),
            total_s,
        }
    }

    async fn tick(&self, what: &str) {
        let Some(token) = &self.token else { return };
        let elapsed = self.started.elapsed().as_secs();
        let p = ProgressNotificationParam::new(token.clone(), elapsed as f64)
            .with_total(self.total_s as f64)
            .with_message(format!("{what} ({elapsed}s of {}s)", self.total_s));
        let _ = self.peer.notify_progress(p).await;
    }
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

#[tool_router]
impl SwitchboardMcp {
    pub fn new(hub: Hub, info: Arc<McpInfo>) -> Self {
        let watcher_stop = CancellationToken::new();
        SwitchboardMcp {
            hub,
            info,
            subs: Arc::default(),
            _watcher: Arc::new(watcher_stop.clone().drop_guard()),
            watcher_stop,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List agents, newest last, with optional status and text filters. Pages with `cursor`.",
        annotations(
            title = "List agents",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_agents(
        &self,
        Parameters(a): Parameters<ListAgentsArgs>,
    ) -> Result<Json<AgentList>, String> {
        let q = AgentQuery {
            status: a.status,
            q: a.q,
            limit: a.limit.unwrap_or(100),
            cursor: a.cursor,
        };
        let (agents, next_cursor) = self.hub.list_agents(q).await.map_err(tool_err)?;
        Ok(Json(AgentList {
            agents,
            next_cursor,
        }))
    }

    #[tool(
        description = "Get one agent by id.",
        annotations(
            title = "Get agent",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_agent(&self, Parameters(a): Parameters<IdArgs>) -> Result<Json<Agent>, String> {
        self.hub.get_agent(&a.id).await.map(Json).map_err(tool_err)
    }

    #[tool(
        description = "Create an agent. Every connected client receives agent.created.",
        annotations(
            title = "Create agent",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_agent(
        &self,
        Parameters(a): Parameters<CreateAgentArgs>,
    ) -> Result<Json<Agent>, String> {
        let new = NewAgent {
            name: a.name,
            description: a.description,
            model: a.model,
            status: a.status,
            config: a.config,
            tags: a.tags,
        };
        self.hub
            .create_agent(new, Source::Mcp)
            .await
            .map(Json)
            .map_err(tool_err)
    }

    #[tool(
        description = "Change an agent with a merge-patch; give expected_version to fail on a concurrent change. Every connected client receives agent.updated.",
        annotations(
            title = "Update agent",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn update_agent(
        &self,
        Parameters(a): Parameters<UpdateAgentArgs>,
    ) -> Result<Json<Agent>, String> {
        self.hub
            .update_agent(&a.id, a.patch(), a.expected_version, Source::Mcp)
            .await
            .map(Json)
            .map_err(tool_err)
    }

    #[tool(
        description = "Delete an agent. Every connected client receives agent.deleted.",
        annotations(
            title = "Delete agent",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn delete_agent(
        &self,
        Parameters(a): Parameters<IdArgs>,
    ) -> Result<Json<Deleted>, String> {
        let agent = self
            .hub
            .delete_agent(&a.id, Source::Mcp)
            .await
            .map_err(tool_err)?;
        Ok(Json(Deleted {
            id: agent.id,
            deleted: true,
        }))
    }

    #[tool(
        description = "Publish an event on a channel; every subscribed webapp, IDE and window receives it.",
        annotations(
            title = "Publish event",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn publish_event(
        &self,
        Parameters(a): Parameters<PublishArgs>,
    ) -> Result<Json<Seq>, String> {
        let draft = EventDraft::new(
            a.channel,
            a.event,
            a.data.unwrap_or(Value::Null),
            Source::Mcp,
        )
        .map_err(tool_err)?;
        let p = self.hub.publish(draft).await.map_err(tool_err)?;
        Ok(Json(Seq { seq: p.seq }))
    }

    #[tool(
        description = "Read the event log: events after `since`, or the newest ones, on a channel or pattern.",
        annotations(
            title = "Recent events",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn recent_events(
        &self,
        Parameters(a): Parameters<RecentArgs>,
    ) -> Result<Json<Events>, String> {
        let pattern = Pattern::parse(a.channel.as_deref().unwrap_or("*")).map_err(tool_err)?;
        let limit = a.limit.unwrap_or(50);
        if limit == 0 || limit > 1000 {
            return Err(tool_err(Error::invalid("limit", "must be 1–1000")));
        }
        let last_seq = self.hub.last_seq();
        let events = self
            .hub
            .events(Some(pattern), a.since, limit, false)
            .await
            .map_err(tool_err)?;
        let events = events.iter().map(EventOut::from).collect();
        Ok(Json(Events { events, last_seq }))
    }

    #[tool(
        description = "Wait for the next event on a channel or pattern (optionally one event name, optionally counting logged events after `since`). Returns {event}, or {timed_out: true} after timeout_s (≤ 300). Sends progress while waiting.",
        annotations(
            title = "Wait for event",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn wait_for_event(
        &self,
        Parameters(a): Parameters<WaitArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<WaitOut>, String> {
        let pattern = Pattern::parse(&a.channel).map_err(tool_err)?;
        let timeout_s = a.timeout_s.unwrap_or(60);
        if timeout_s == 0 || timeout_s > MAX_WAIT_S {
            return Err(tool_err(Error::invalid(
                "timeout_s",
                format_args!("must be 1–{MAX_WAIT_S}"),
            )));
        }
        let mut session = self.hub.connect(ClientInfo {
            id: format!("mcp-wait-{}", ctx.id),
            transport: "mcp",
            ..Default::default()
        });
        session
            .subscribe(
                pattern,
                SubscribeOpts {
                    since: a.since,
                    ..Default::default()
                },
                |_| None,
            )
            .map_err(tool_err)?;
        let progress = Progress::new(&ctx, timeout_s);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            tokio::select! {
                () = ctx.ct.cancelled() => return Err("cancelled: the client cancelled the wait".into()),
                () = tokio::time::sleep_until(deadline) => return Ok(Json(WaitOut { event: None, timed_out: Some(true) })),
                _ = tick.tick() => progress.tick("waiting for an event").await,
                d = session.next() => match d {
                    Some(Delivery::Event(e)) if a.event.as_deref().is_none_or(|n| n == e.event()) => {
                        return Ok(Json(WaitOut { event: Some(EventOut::from(&e)), timed_out: None }));
                    }
                    Some(_) => {}
                    None => return Err("unavailable: the hub stopped delivering events".into()),
                },
            }
        }
    }

    #[tool(
        description = "Ask the user a question and wait for the answer. Publishes `question` {question_id, question}; the first answer (from the Switchboard window, a webapp's WebSocket `answer` frame, or POST /api/questions/{id}/answer) is returned as {answer, answered_by}. Fails after timeout_s (default 300).",
        annotations(
            title = "Ask the user",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn ask_user(
        &self,
        Parameters(a): Parameters<AskArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AnswerOut>, String> {
        let timeout_s = a.timeout_s.unwrap_or(300);
        if timeout_s == 0 || timeout_s > MAX_ASK_S {
            return Err(tool_err(Error::invalid(
                "timeout_s",
                format_args!("must be 1–{MAX_ASK_S}"),
            )));
        }
        let asked = self
            .hub
            .ask(a.question, a.channel, Source::Mcp)
            .await
            .map_err(tool_err)?;
        let question_id = asked.question_id.clone();
        let progress = Progress::new(&ctx, timeout_s);
        let stop = ctx.ct.clone();
        let wait = asked.answer(Duration::from_secs(timeout_s), &stop);
        tokio::pin!(wait);
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            tokio::select! {
                r = &mut wait => return match r {
                    Some(ans) => Ok(Json(AnswerOut { answer: ans.answer, answered_by: ans.answered_by.as_str().to_owned() })),
                    None if ctx.ct.is_cancelled() => Err(format!("cancelled: question {question_id} withdrawn")),
                    None => Err(format!("timed_out: no answer to question {question_id} within {timeout_s}s")),
                },
                _ = tick.tick() => progress.tick("waiting for the user's answer").await,
            }
        }
    }

    #[tool(
        description = "The hub's version, URL, open connections, newest seq and uptime.",
        annotations(
            title = "Hub status",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn hub_status(&self, Parameters(_): Parameters<NoArgs>) -> Json<Status> {
        Json(Status {
            version: switchboard_core::VERSION.to_owned(),
            url: self.info.url.clone(),
            connections: self.hub.bus().connection_count(),
            last_seq: self.hub.last_seq(),
            uptime_s: self.hub.uptime().as_secs(),
        })
    }
}

impl SwitchboardMcp {
    fn json_text(v: &impl Serialize, uri: String) -> ReadResourceResponse {
        let text = serde_json::to_string_pretty(v).unwrap_or_default();
        ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("application/json"),
        ])
        .into()
    }

    /// Follows the bus for a legacy session and sends `resources/updated` for its subscriptions and
    /// `resources/list_changed` when agents come or go, until the session ends.
    fn spawn_watcher(&self, peer: Peer<RoleServer>) {
        let mut session = self.hub.connect(ClientInfo {
            id: format!("mcp-{}", uuid_like()),
            transport: "mcp",
            ..Default::default()
        });
        if session
            .subscribe(
                Pattern::Prefix(String::new()),
                SubscribeOpts::default(),
                |_| None,
            )
            .is_err()
        {
            return;
        }
        let subs = self.subs.clone();
        let stop = self.watcher_stop.clone();
        tokio::spawn(async move {
            loop {
                let d = tokio::select! {
                    () = stop.cancelled() => break,
                    d = session.next() => d,
                };
                let Some(Delivery::Event(e)) = d else {
                    if d.is_none() {
                        break;
                    }
                    continue;
                };
                if peer.is_transport_closed() {
                    break;
                }
                let (uris, list_changed) = affected(&e);
                let wanted: Vec<String> = {
                    let subs = subs.lock().unwrap_or_else(|p| p.into_inner());
                    uris.into_iter().filter(|u| subs.contains(u)).collect()
                };
                for uri in wanted {
                    if peer
                        .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if list_changed && peer.notify_resource_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn check_uri(uri: &str) -> Result<(), McpError> {
    if uri == AGENTS_URI
        || uri == EVENTS_URI
        || uri
            .strip_prefix(AGENT_PREFIX)
            .is_some_and(|id| !id.is_empty())
    {
        Ok(())
    } else {
        Err(McpError::resource_not_found(
            format!("no such resource {uri}"),
            None,
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SwitchboardMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("switchboard", switchboard_core::VERSION))
        .with_instructions(
            "Switchboard is the local real-time hub between this IDE and the user's agent webapp. Agents changed here \
             reach every connected webapp; use wait_for_event to wait for the webapp, and ask_user to ask the user.",
        )
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.spawn_watcher(ctx.peer);
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut out = vec![
            Resource::new(AGENTS_URI, "agents")
                .with_mime_type("application/json")
                .with_description("Every agent"),
            Resource::new(EVENTS_URI, "events")
                .with_mime_type("application/json")
                .with_description("The 100 newest events"),
        ];
        let (agents, _) = self
            .hub
            .list_agents(AgentQuery {
                limit: 500,
                ..Default::default()
            })
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        out.extend(agents.iter().map(|a| {
            Resource::new(agent_uri(&a.id), format!("agent {}", a.name))
                .with_mime_type("application/json")
        }));
        Ok(ListResourcesResult::with_all_items(out))
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("switchboard://agents/{id}", "agent")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let internal = |e: Error| McpError::internal_error(e.to_string(), None);
        if req.uri == AGENTS_URI {
            let (agents, next_cursor) = self
                .hub
                .list_agents(AgentQuery {
                    limit: 500,
                    ..Default::default()
                })
                .await
                .map_err(internal)?;
            return Ok(Self::json_text(
                &json!({"agents": agents, "next_cursor": next_cursor}),
                req.uri,
            ));
        }
        if req.uri == EVENTS_URI {
            let events = self
                .hub
                .events(None, None, 100, false)
                .await
                .map_err(internal)?;
            let events: Vec<EventOut> = events.iter().map(EventOut::from).collect();
            return Ok(Self::json_text(
                &json!({"events": events, "last_seq": self.hub.last_seq()}),
                req.uri,
            ));
        }
        if let Some(id) = req.uri.strip_prefix(AGENT_PREFIX) {
            return match self.hub.get_agent(id).await {
                Ok(a) => Ok(Self::json_text(&a, req.uri)),
                Err(e) if e.kind() == switchboard_core::ErrorKind::NotFound => Err(
                    McpError::resource_not_found(format!("no agent with id {id}"), None),
                ),
                Err(e) => Err(internal(e)),
            };
        }
        Err(McpError::resource_not_found(
            format!("no such resource {}", req.uri),
            None,
        ))
    }

    async fn subscribe(
        &self,
        req: SubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        check_uri(&req.uri)?;
        self.subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        req: UnsubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&req.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let accepted = context.accepted().clone();
        let sink = context.sink().clone();
        let wanted: HashSet<String> = accepted
            .resource_subscriptions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let list_changed = accepted.resources_list_changed == Some(true);
        let mut session = self.hub.connect(ClientInfo {
            id: format!("mcp-listen-{}", uuid_like()),
            transport: "mcp",
            ..Default::default()
        });
        session
            .subscribe(
                Pattern::Prefix(String::new()),
                SubscribeOpts::default(),
                |_| None,
            )
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        loop {
            let d = tokio::select! {
                () = context.cancelled() => return Ok(()),
                d = session.next() => d,
            };
            let e = match d {
                Some(Delivery::Event(e)) => e,
                Some(Delivery::Control(_)) => continue,
                None => return Ok(()),
            };
            let (uris, changed) = affected(&e);
            for uri in uris.into_iter().filter(|u| wanted.contains(u)) {
                if sink.notify_resource_updated(uri).await.is_err() {
                    return Ok(());
                }
            }
            if changed && list_changed && sink.notify_resource_list_changed().await.is_err() {
                return Ok(());
            }
        }
    }
}
