//! REST (SPEC §3): agents, events, channels, clients, health, questions and the dev-webhook compatibility
//! endpoints. Handlers only translate HTTP to calls on the request's [`Caller`](switchboard_core::Caller) and
//! back; what the caller may do is checked there.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::{
    AgentPage, AgentPatch, AgentQuery, Error, EventsPage, EventsQuery, NewAgent, NewEvent,
};

use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, Rest, Webhook, parse_json};
use crate::state::AppState;

type Params = Query<HashMap<String, String>>;

fn param(q: &HashMap<String, String>, key: &str) -> Option<String> {
    q.get(key).filter(|v| !v.is_empty()).cloned()
}

fn parse_num<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, Error> {
    param(q, key)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| Error::invalid(key, "must be a non-negative integer"))
        })
        .transpose()
}

/// `GET /health`: open to everyone, so it says nothing about agents, events or clients.
pub async fn health(State(s): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": switchboard_core::VERSION,
        "uptime_s": s.hub.uptime().as_secs(),
        "connections": s.hub.connection_count(),
        "last_seq": s.hub.last_seq(),
        "epoch": s.hub.epoch(),
        "pid": std::process::id(),
    }))
}

/// `GET /api/connect`: what the window's Connect panel shows. The token only for the owner (SPEC §10).
pub async fn connect_info(State(s): State<AppState>, Rest(c): Rest) -> Json<Value> {
    let ws = s.url.replacen("http", "ws", 1);
    Json(json!({
        "url": s.url,
        "ws_url": format!("{ws}/ws"),
        "sse_url": format!("{}/events", s.url),
        "mcp_url": format!("{}/mcp", s.url),
        "token": c.hub_token().map(|t| t.expose()),
        "require_token": s.hub.requires_token(),
        "pusher": {
            "app_id": s.hub.pusher().app_id(),
            "key": s.hub.pusher().key(),
            // Like the token: for the hub's owner (its own window) only.
            "secret": c.hub_token().map(|_| s.hub.pusher().secret().expose()),
        },
    }))
}

/// `GET /api/agents?status=&q=&limit=&cursor=`.
pub async fn list_agents(Rest(c): Rest, Query(q): Params) -> ApiResult<Json<AgentPage>> {
    let query = AgentQuery {
        status: param(&q, "status"),
        q: param(&q, "q"),
        limit: parse_num(&q, "limit")?,
        cursor: param(&q, "cursor"),
    };
    Ok(Json(c.list_agents(query).await?))
}

fn etag(version: i64) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{version}\""))]
}

/// `POST /api/agents`: 201 with the agent.
pub async fn create_agent(Rest(c): Rest, ApiJson(new): ApiJson<NewAgent>) -> ApiResult<Response> {
    let agent = c.create_agent(new).await?;
    Ok((StatusCode::CREATED, etag(agent.version), Json(agent)).into_response())
}

/// `POST /api/agents/batch [{…}, …]`: 201 `{agents}`, all or none; a bad item is a 422 naming `[index].field`.
pub async fn create_agents(Rest(c): Rest, body: axum::body::Bytes) -> ApiResult<Response> {
    // Item by item, so a type error names its index even where the item's own parse would not.
    let items: Vec<Value> = parse_json(&body).map_err(|e| {
        if e.code() == "invalid_field" {
            Error::invalid("body", "must be a JSON array of agents")
        } else {
            e
        }
    })?;
    let new = items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let text = serde_json::to_vec(v).map_err(Error::internal)?;
            parse_json::<NewAgent>(&text).map_err(|e| e.at_index(i))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let agents = c.create_agents(new).await?;
    Ok((StatusCode::CREATED, Json(json!({"agents": agents}))).into_response())
}

/// `GET /api/agents/{id}`, with its version as the `ETag`.
pub async fn get_agent(Rest(c): Rest, ApiPath(id): ApiPath<String>) -> ApiResult<Response> {
    let agent = c.get_agent(&id).await?;
    Ok((etag(agent.version), Json(agent)).into_response())
}

/// `If-Match: "3"`, `W/"3"` or `3`; `*` means any version.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Error> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" {
        return Ok(None);
    }
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse()
        .map(Some)
        .map_err(|_| Error::bad_request("bad_if_match", "If-Match must be a version, like \"3\""))
}

/// `PATCH /api/agents/{id}`: a merge-patch, optionally conditional on `If-Match`.
pub async fn update_agent(
    Rest(c): Rest,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<AgentPatch>,
) -> ApiResult<Response> {
    let agent = c.update_agent(&id, patch, if_match(&headers)?).await?;
    Ok((etag(agent.version), Json(agent)).into_response())
}

/// `DELETE /api/agents/{id}`: 204.
pub async fn delete_agent(Rest(c): Rest, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    c.delete_agent(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/events?channel=&since=&until=&limit=`.
pub async fn list_events(Rest(c): Rest, Query(q): Params) -> ApiResult<Json<EventsPage>> {
    let query = EventsQuery {
        channel: param(&q, "channel"),
        since: parse_num(&q, "since")?,
        until: parse_num(&q, "until")?,
        limit: parse_num(&q, "limit")?,
    };
    Ok(Json(c.events(query).await?))
}

/// `GET /api/events/export?channel=&since=&until=`: NDJSON, one envelope per line, oldest first: the log as it
/// was when the request came (`until` defaults to the last seq then), read a page at a time.
pub async fn export_events(Rest(c): Rest, Query(q): Params) -> ApiResult<Response> {
    let channel = param(&q, "channel");
    let since: u64 = parse_num(&q, "since")?.unwrap_or(0);
    let until: u64 = parse_num(&q, "until")?.unwrap_or(u64::MAX);
    // The first page now, so a bad pattern or a forbidden channel is an error status, not a broken stream.
    let page = |since: u64| {
        c.events(EventsQuery {
            channel: channel.clone(),
            since: Some(since),
            until: Some(until),
            limit: Some(switchboard_core::limits::MAX_EVENTS_PAGE),
        })
    };
    let first = page(since).await?;
    let until = until.min(first.last_seq);
    let c2 = c.clone();
    let channel2 = channel.clone();
    let stream = futures_util::stream::unfold(Some(first.events), move |state| {
        let c = c2.clone();
        let channel = channel2.clone();
        async move {
            let events = state?;
            let last = events.last().map(|e| e.seq())?;
            let mut chunk = Vec::with_capacity(events.len() * 160);
            for e in &events {
                chunk.extend_from_slice(e.json());
                chunk.push(b'\n');
            }
            let next = if events.len() < switchboard_core::limits::MAX_EVENTS_PAGE || last >= until
            {
                None
            } else {
                let q = EventsQuery {
                    channel,
                    since: Some(last),
                    until: Some(until),
                    limit: Some(switchboard_core::limits::MAX_EVENTS_PAGE),
                };
                match c.events(q).await {
                    Ok(p) => Some(p.events),
                    Err(e) => {
                        tracing::warn!(error = %e, "export stopped early");
                        None
                    }
                }
            };
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), next))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /api/events/{seq}/replay`: 202 `{seq}` of the copy (`source: system`, `replay_of: seq`).
pub async fn replay_event(Rest(c): Rest, ApiPath(seq): ApiPath<String>) -> ApiResult<Response> {
    let seq: u64 = seq
        .parse()
        .map_err(|_| Error::invalid("seq", "must be a non-negative integer"))?;
    let published = c.replay(seq).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"seq": published.seq, "replay_of": seq})),
    )
        .into_response())
}

/// `POST /api/events {channel, event, data}`: 202 `{seq}`.
pub async fn publish_event(Rest(c): Rest, ApiJson(ev): ApiJson<NewEvent>) -> ApiResult<Response> {
    let published = c.publish(ev).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"seq": published.seq}))).into_response())
}

/// `GET /api/watches`: the file watcher's roots (the owner's).
pub async fn list_watches(Rest(c): Rest) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"watches": c.watches()?})))
}

/// The body of `POST /api/watches`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchBody {
    path: String,
}

/// `POST /api/watches {path}`: 201 with the root (absolute), or 200 when it was already watched.
pub async fn add_watch(Rest(c): Rest, ApiJson(b): ApiJson<WatchBody>) -> ApiResult<Response> {
    let (info, new) = c.add_watch(std::path::Path::new(&b.path)).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)).into_response())
}

/// `DELETE /api/watches?path=ROOT`: 204.
pub async fn remove_watch(Rest(c): Rest, Query(q): Params) -> ApiResult<StatusCode> {
    let path = param(&q, "path")
        .ok_or_else(|| Error::bad_request("missing_field", "missing query parameter: path"))?;
    c.remove_watch(std::path::Path::new(&path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/channels`: occupied channels.
pub async fn list_channels(Rest(c): Rest) -> Json<Value> {
    Json(json!({"channels": c.channels()}))
}

/// `GET /api/channels/{name}`.
pub async fn get_channel(Rest(c): Rest, ApiPath(name): ApiPath<String>) -> ApiResult<Json<Value>> {
    let ch = c.channel(&name)?;
    let mut body =
        json!({"name": ch.name, "occupied": ch.subscribers > 0, "subscribers": ch.subscribers});
    if let Some(members) = ch.members {
        body["members"] = json!(members);
    }
    Ok(Json(body))
}

/// `GET /api/clients`.
pub async fn list_clients(Rest(c): Rest) -> Json<Value> {
    Json(json!({"clients": c.clients()}))
}

/// `GET /api/questions`: the pending questions the caller may see.
pub async fn list_questions(Rest(c): Rest) -> Json<Value> {
    Json(json!({"questions": c.questions()}))
}

/// The body of an answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    answer: Value,
}

/// `POST /api/questions/{id}/answer {answer}`: 202 `{seq}`.
pub async fn answer_question(
    Rest(c): Rest,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<AnswerBody>,
) -> ApiResult<Response> {
    let published = c.answer(&id, b.answer).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"seq": published.seq}))).into_response())
}

/// Reads a required field from a loose JSON body, answering 400 naming it when it is missing.
fn required<'a>(body: &'a Value, field: &str) -> Result<&'a Value, Error> {
    body.get(field)
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::bad_request("missing_field", format!("missing field: {field}")))
}

fn required_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, Error> {
    required(body, field)?
        .as_str()
        .ok_or_else(|| Error::invalid(field, "must be a string"))
}

fn object(body: &Value) -> Result<(), Error> {
    if body.is_object() {
        Ok(())
    } else {
        Err(Error::bad_request(
            "bad_body",
            "the body must be a JSON object",
        ))
    }
}

/// Publishes `{event_type, data}` on `dev`; returns the event type and how many subscribers got it.
async fn publish_dev(c: &switchboard_core::Caller, body: &Value) -> Result<(String, usize), Error> {
    object(body)?;
    let event_type = required_str(body, "event_type")?.to_owned();
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let published = c
        .publish(NewEvent::new("dev", event_type.clone(), data))
        .await?;
    Ok((event_type, published.delivered))
}

/// `POST /api/dev/webhook {event_type, data}` → `{success, message}`.
pub async fn dev_webhook(
    Webhook(c): Webhook,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let (event_type, _) = publish_dev(&c, &body).await?;
    Ok(Json(
        json!({"success": true, "message": format!("Webhook received: {event_type}")}),
    ))
}

/// `POST /api/dev/trigger {event_type, data}` → `{success, subscribers_notified}`.
pub async fn dev_trigger(
    Webhook(c): Webhook,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let (_, n) = publish_dev(&c, &body).await?;
    Ok(Json(json!({"success": true, "subscribers_notified": n})))
}

/// `POST /api/internal/notify {channel, event, data}`: publish, 400 naming a missing field.
pub async fn internal_notify(
    Webhook(c): Webhook,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    object(&body)?;
    let ev = NewEvent::new(
        required_str(&body, "channel")?,
        required_str(&body, "event")?,
        required(&body, "data")?.clone(),
    );
    let published = c.publish(ev).await?;
    Ok(Json(
        json!({"success": true, "seq": published.seq, "subscribers_notified": published.delivered}),
    ))
}

/// Any other path: 404 in the error shape.
pub async fn not_found() -> ApiError {
    Error::not_found("no such route").into()
}
