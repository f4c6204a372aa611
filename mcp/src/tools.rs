//! The tools (SPEC §8). Each one is a call on the request's [`Caller`](switchboard_core::Caller), which checks
//! it; the tools add MCP's own parts: schemas and annotations, progress while a wait runs, cancellation.

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{Json, RoleServer, tool, tool_router};
use switchboard_core::{
    Agent, AgentPage, AgentQuery, ClientInfo, Delivery, EventsPage, EventsQuery, NewAgent,
    NewEvent, Pattern, Resume,
};

use crate::args::{
    AnswerOut, AskArgs, Deleted, IdArgs, MAX_ASK_S, MAX_WAIT_S, NoArgs, Seq, Status,
    UpdateAgentArgs, WaitArgs, WaitOut, timeout, tool_err, wait_err,
};
use crate::progress;
use crate::server::SwitchboardMcp;

#[tool_router(vis = "pub(crate)")]
impl SwitchboardMcp {
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
        Parameters(q): Parameters<AgentQuery>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<AgentPage>, String> {
        self.caller(&ctx)
            .list_agents(q)
            .await
            .map(Json)
            .map_err(tool_err)
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
    async fn get_agent(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Agent>, String> {
        self.caller(&ctx)
            .get_agent(&a.id)
            .await
            .map(Json)
            .map_err(tool_err)
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
        Parameters(new): Parameters<NewAgent>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Agent>, String> {
        self.caller(&ctx)
            .create_agent(new)
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Agent>, String> {
        let c = self.caller(&ctx);
        c.update_agent(&a.id, a.patch, None)
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Deleted>, String> {
        let agent = self
            .caller(&ctx)
            .delete_agent(&a.id)
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
        Parameters(ev): Parameters<NewEvent>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Seq>, String> {
        let p = self.caller(&ctx).publish(ev).await.map_err(tool_err)?;
        Ok(Json(Seq { seq: p.seq }))
    }

    #[tool(
        description = "Read the event log: events after `since`, or the newest ones, on a channel or pattern (default: every channel you may read).",
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
        Parameters(q): Parameters<EventsQuery>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<EventsPage>, String> {
        self.caller(&ctx)
            .events(q)
            .await
            .map(Json)
            .map_err(tool_err)
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
        let timeout_s = timeout(a.timeout_s, 60, MAX_WAIT_S)?;
        let info = ClientInfo {
            id: format!("mcp-wait-{}", ctx.id),
            ..ClientInfo::new("mcp")
        };
        let resume = Resume {
            since: a.since,
            epoch: None,
        };
        let mut session = self
            .caller(&ctx)
            .follow(info, Some(pattern), &resume)
            .map_err(tool_err)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
        let wait = async {
            loop {
                tokio::select! {
                    () = ctx.ct.cancelled() => return Err(wait_err("cancelled", "the client cancelled the wait".into())),
                    () = tokio::time::sleep_until(deadline) => return Ok(Json(WaitOut { event: None, timed_out: Some(true) })),
                    d = session.next() => match d {
                        Some(Delivery::Event(e)) if a.event.as_deref().is_none_or(|n| n == e.event()) => {
                            return Ok(Json(WaitOut { event: Some(e), timed_out: None }));
                        }
                        Some(_) => {}
                        None => return Err(wait_err("unavailable", "the hub stopped delivering events".into())),
                    },
                }
            }
        };
        progress::reporting(&ctx, timeout_s, "waiting for an event", wait).await
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
        let timeout_s = timeout(a.timeout_s, 300, MAX_ASK_S)?;
        let ask = switchboard_core::Ask {
            question: a.question,
            channel: a.channel,
            timeout: Duration::from_secs(timeout_s),
            key: a.key,
            options: a.options,
            via: a.via.unwrap_or(switchboard_core::Via::Both),
        };
        let asked = self.caller(&ctx).ask(ask).await.map_err(tool_err)?;
        let question_id = asked.question_id.clone();
        let stop = ctx.ct.clone();
        let wait = asked.answer(&stop);
        match progress::reporting(&ctx, timeout_s, "waiting for the user's answer", wait).await {
            Some(ans) => Ok(Json(AnswerOut {
                answer: ans.answer,
                answered_by: ans.answered_by.as_str().to_owned(),
            })),
            None if ctx.ct.is_cancelled() => Err(wait_err(
                "cancelled",
                format!("question {question_id} withdrawn"),
            )),
            None => Err(wait_err(
                "timed_out",
                format!("no answer to question {question_id} within {timeout_s}s"),
            )),
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
        let hub = self.hub();
        Json(Status {
            version: switchboard_core::VERSION.to_owned(),
            url: self.url().to_owned(),
            connections: hub.connection_count(),
            last_seq: hub.last_seq(),
            uptime_s: hub.uptime().as_secs(),
        })
    }
}
