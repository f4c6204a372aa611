//! [`SwitchboardMcp`]: the MCP server of SPEC §8, one value per MCP session, served at `/mcp` ([`crate::http`]);
//! `switchboard mcp` only bridges stdio to it ([`crate::bridge`]).
//!
//! Who is calling comes from the request: the hub's guard authenticated it and left a
//! [`Principal`] on the HTTP request, which rmcp passes on in the request context. Every tool, prompt, resource
//! read and subscription acts as that caller, so MCP obeys the same rules as REST and WebSocket. A legacy session holds
//! one bus connection from `initialize` on (for its resource notifications), so it counts against the
//! connection cap like any other client.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::request::Parts;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    Extensions, Implementation, InitializeRequestParams, InitializeResult,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ResourceTemplate, ServerCapabilities,
    ServerConfig, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, prompt_handler, tool_handler};
use switchboard_core::{Caller, ClientInfo, Hub, Principal, Resume, Session, Source};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::http::Admitted;
use crate::resources::{self, AGENT_TEMPLATE, Ended, follow_changes, mcp_err};

/// What the server needs besides the hub.
#[derive(Debug, Clone)]
pub struct McpInfo {
    /// The hub's base URL, for `hub_status`.
    pub url: String,
}

/// The MCP server. The HTTP service makes one per session.
#[derive(Clone)]
pub struct SwitchboardMcp {
    hub: Hub,
    info: Arc<McpInfo>,
    /// Resource URIs this (legacy) session subscribed to.
    subs: Arc<Mutex<HashSet<String>>>,
    /// The session's bus connection, opened at `initialize` and handed to its watcher once initialized.
    watcher: Arc<Mutex<Option<Session>>>,
    /// Stops the watcher when the last clone of the handler goes.
    _watcher_guard: Arc<DropGuard>,
    watcher_stop: CancellationToken,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

/// The caller the hub's guard left on the HTTP request. Without one (no HTTP request, so no guard ran), the
/// caller is anonymous: the least the hub grants.
fn principal(ext: &Extensions) -> Principal {
    ext.get::<Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
        .unwrap_or(Principal::Anonymous)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SwitchboardMcp {
    /// A server over `hub`.
    pub fn new(hub: Hub, info: Arc<McpInfo>) -> Self {
        let watcher_stop = CancellationToken::new();
        SwitchboardMcp {
            hub,
            info,
            subs: Arc::default(),
            watcher: Arc::default(),
            _watcher_guard: Arc::new(watcher_stop.clone().drop_guard()),
            watcher_stop,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    /// The caller of this request.
    pub(crate) fn caller(&self, ctx: &RequestContext<RoleServer>) -> Caller {
        self.hub.caller(principal(&ctx.extensions), Source::Mcp)
    }

    /// The hub, for its status.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The hub's base URL.
    pub(crate) fn url(&self) -> &str {
        &self.info.url
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for SwitchboardMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
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

    /// Opens the session's bus connection as the caller: refused at the connection cap, like any other client.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        // Opened by `http::admit` as the request came in; without it (no HTTP request), opened here.
        let admitted = ctx
            .extensions
            .get::<Parts>()
            .and_then(|p| p.extensions.get::<Admitted>())
            .and_then(|a| lock(&a.0).take());
        let session = match admitted {
            Some(s) => s,
            None => self
                .caller(&ctx)
                .follow(ClientInfo::new("mcp"), None, &Resume::default())
                .map_err(mcp_err)?,
        };
        *lock(&self.watcher) = Some(session);
        ctx.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        let Some(session) = lock(&self.watcher).take() else {
            return;
        };
        let subs = self.subs.clone();
        let stop = self.watcher_stop.clone();
        let wants = move |uri: &str| lock(&subs).contains(uri);
        tokio::spawn(follow_changes(
            session,
            stop.cancelled_owned(),
            wants,
            true,
            ctx.peer,
        ));
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let all = resources::list(&self.caller(&ctx)).await?;
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(AGENT_TEMPLATE, "agent").with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        resources::read(&self.caller(&ctx), req.uri).await
    }

    /// Notifications for a URI come only from channels the session's caller may read.
    async fn subscribe(
        &self,
        req: SubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        resources::check_uri(&req.uri)?;
        lock(&self.subs).insert(req.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        req: UnsubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        lock(&self.subs).remove(&req.uri);
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
        let wanted: HashSet<String> = accepted
            .resource_subscriptions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let caller = self.caller(context.request_context());
        let session = caller
            .follow(ClientInfo::new("mcp"), None, &Resume::default())
            .map_err(mcp_err)?;
        let sink = context.sink().clone();
        let list_changed = accepted.resources_list_changed == Some(true);
        let wants = move |uri: &str| wanted.contains(uri);
        match follow_changes(session, context.cancelled(), wants, list_changed, sink).await {
            Ended::Stopped => Ok(()),
            // The stream's answer would have nowhere to go: rmcp would log a failed send at ERROR while it drains
            // the closing session. Waiting for the cancellation that follows lets it drop the answer quietly.
            Ended::SinkGone => {
                context.cancelled().await;
                Ok(())
            }
            Ended::ByTheBus => Err(McpError::internal_error(
                "the hub stopped following changes; listen again",
                None,
            )),
        }
    }
}
