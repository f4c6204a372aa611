//! The tools (SPEC §8). Each one is a call on the request's [`Caller`](switchboard_core::Caller), which checks
//! it; the tools add MCP's own parts: schemas and annotations, progress while a wait runs, cancellation.

use std::time::Duration;

use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResponse, CallToolResult};
use rmcp::service::RequestContext;
use rmcp::{Json, RoleServer, tool, tool_router};
use switchboard_core::{
    Agent, AgentPage, AgentQuery, Answer, Ask, ClientInfo, Delivery, EventsPage, EventsQuery,
    NewAgent, NewEvent, Pattern, Resume, Source, Via,
};

use crate::args::{
    AnswerOut, AskArgs, Deleted, IdArgs, MAX_ASK_S, MAX_WAIT_S, NoArgs, Seq, Status,
    UpdateAgentArgs, WaitArgs, WaitOut, timeout, tool_err, wait_err,
};
use crate::elicit::{self, Outcome};
use crate::progress;
use crate::server::SwitchboardMcp;

/// A finished `ask_user`, with its structured result.
fn answered(answer: serde_json::Value, by: Source) -> CallToolResponse {
    let out = AnswerOut {
        answer,
        answered_by: by.as_str().to_owned(),
    };
    let value = serde_json::to_value(&out).unwrap_or_default();
    CallToolResponse::Complete(CallToolResult::structured(value))
}

/// The IDE's user declined a question asked only there: it is withdrawn, and the tool fails saying so.
async fn declined(caller: &switchboard_core::Caller, question_id: &str) -> String {
    if let Err(e) = caller.withdraw(question_id, "declined").await {
        tracing::debug!(error = %e, "could not withdraw a declined question");
    }
    wait_err(
        "declined",
        format!("the user declined to answer question {question_id}"),
    )
}

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
        description = "Ask the user a question and wait for the answer. With via `both` (default) or `ide`, and a client that supports elicitation, the question is also put to this IDE's user as a form; with `hub` or `both` it is published as `question` {question_id, question, options?} for the Switchboard window and webapps (WebSocket `answer` frame, POST /api/questions/{id}/answer). The first answer wins and is returned as {answer, answered_by}. `options` makes the answer a choice. The question stays pending for timeout_s (default 300) even if this call is cut off: ask again with the same `key` to take it up or get its answer.",
        output_schema = rmcp::handler::server::common::schema_for_output::<AnswerOut>(),
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
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, String> {
        let timeout_s = timeout(a.timeout_s, 300, MAX_ASK_S)?;
        let caller = self.caller(&ctx);
        // A client that cannot be asked in the IDE gets the hub path only, whatever `via` says.
        let in_ide = elicit::form_supported(&ctx);
        let via = match a.via.unwrap_or(Via::Both) {
            _ if !in_ide => Via::Hub,
            v => v,
        };
        let asked = if let Some(question_id) = state {
            // 2026-07-28: the call again, with the IDE user's response to the form.
            let asked = caller.rejoin(&question_id).await.map_err(tool_err)?;
            match elicit::response(responses.as_ref()) {
                Some(Outcome::Answered(v)) => match caller.answer(&question_id, v.clone()).await {
                    Ok(_) => return Ok(answered(v, Source::Mcp)),
                    // Answered on the hub in the meantime: that answer won.
                    Err(e) if e.code() == "not_found" => asked,
                    Err(e) => return Err(tool_err(e)),
                },
                _ if asked.info.via == Via::Ide => {
                    return Err(declined(&caller, &question_id).await);
                }
                // Declined or dismissed: the hub path is still open.
                _ => asked,
            }
        } else {
            let ask = Ask {
                question: a.question,
                channel: a.channel,
                timeout: Duration::from_secs(timeout_s),
                key: a.key,
                options: a.options,
                via,
            };
            caller.ask(ask).await.map_err(tool_err)?
        };
        let question_id = asked.question_id.clone();
        let info = asked.info.clone();
        let ide = info.via != Via::Hub && in_ide && !asked.joined;
        if ide && elicit::round_trips(&ctx) {
            return Ok(CallToolResponse::InputRequired(elicit::input_required(
                &info,
            )));
        }
        let stop = ctx.ct.clone();
        let hub = asked.answer(&stop);
        let both = async {
            if !ide {
                return hub.await;
            }
            tokio::pin!(hub);
            tokio::select! {
                a = &mut hub => a,
                o = elicit::ask_in_ide(&ctx, &info) => match o {
                    Some(Outcome::Answered(v)) => match caller.answer(&question_id, v.clone()).await {
                        Ok(_) => Some(Answer { answer: v, answered_by: Source::Mcp }),
                        Err(_) => hub.await,
                    },
                    // Declined, dismissed or not possible: the hub path decides, unless there is none.
                    _ if info.via == Via::Ide => None,
                    _ => hub.await,
                },
            }
        };
        let got = progress::reporting(&ctx, timeout_s, "waiting for the user's answer", both).await;
        match got {
            Some(ans) => Ok(answered(ans.answer, ans.answered_by)),
            None if ctx.ct.is_cancelled() => Err(wait_err(
                "cancelled",
                format!(
                    "question {question_id} is still pending; ask again with the same key to take it up"
                ),
            )),
            // Asked only in the IDE, and not answered there: declined (withdrawn now), unless its time ran out.
            None if ide && info.via == Via::Ide => {
                match caller.withdraw(&question_id, "declined").await {
                    Ok(()) => Err(wait_err(
                        "declined",
                        format!("the user declined to answer question {question_id}"),
                    )),
                    Err(_) => Err(wait_err(
                        "timed_out",
                        format!("no answer to question {question_id} within {timeout_s}s"),
                    )),
                }
            }
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
