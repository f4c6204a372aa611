//! REST (SPEC §3): agents, events, channels, clients, health, questions and the dev-webhook compatibility
//! endpoints. Handlers only translate HTTP to [`Hub`](switchboard_core::Hub) calls and back.

use std::collections::HashMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::model::check_channel;
use switchboard_core::{
    AgentPatch, AgentQuery, Error, EventDraft, NewAgent, Pattern, Principal, Source,
};

use crate::error::{ApiJson, ApiResult};
use crate::state::AppState;

type Params = Query<HashMap<String, String>>;

fn parse_num<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, Error> {
    q.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| Error::invalid(key, "must be a non-negative integer"))
        })
        .transpose()
}

pub async fn health(State(s): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": switchboard_core::VERSION,
        "uptime_s": s.hub.uptime().as_secs(),
        "connections": s.hub.bus().connection_count(),
        "last_seq": s.hub.last_seq(),
        "epoch": s.hub.epoch(),
        "pid": std::process::id(),
    }))
}

/// `GET /api/connect`: what the window's Connect panel shows. The caller already passed the token check.
pub async fn connect_info(State(s): State<AppState>) -> Json<Value> {
    let ws = s.url.replacen("http", "ws", 1);
    Json(json!({
        "url": s.url,
        "ws_url": format!("{ws}/ws"),
        "sse_url": format!("{}/events", s.url),
        "mcp_url": format!("{}/mcp", s.url),
        "token": s.auth.token().expose(),
        "require_token": s.auth.required(),
    }))
}

pub async fn list_agents(State(s): State<AppState>, Query(q): Params) -> ApiResult<Json<Value>> {
    let limit = parse_num::<usize>(&q, "limit")?.unwrap_or(100);
    let query = AgentQuery {
        status: q.get("status").filter(|v| !v.is_empty()).cloned(),
        q: q.get("q").filter(|v| !v.is_empty()).cloned(),
        limit,
        cursor: q.get("cursor").filter(|v| !v.is_empty()).cloned(),
    };
    let (agents, next_cursor) = s.hub.list_agents(query).await?;
    Ok(Json(json!({"agents": agents, "next_cursor": next_cursor})))
}

fn etag(version: i64) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{version}\""))]
}

pub async fn create_agent(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiJson(new): ApiJson<NewAgent>,
) -> ApiResult<Response> {
    p.check_agents()?;
    let agent = s.hub.create_agent(new, Source::Rest).await?;
    Ok((StatusCode::CREATED, etag(agent.version), Json(agent)).into_response())
}

pub async fn get_agent(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let agent = s.hub.get_agent(&id).await?;
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

pub async fn update_agent(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<AgentPatch>,
) -> ApiResult<Response> {
    p.check_agents()?;
    let expected = if_match(&headers)?;
    let agent = s
        .hub
        .update_agent(&id, patch, expected, Source::Rest)
        .await?;
    Ok((etag(agent.version), Json(agent)).into_response())
}

pub async fn delete_agent(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    p.check_agents()?;
    s.hub.delete_agent(&id, Source::Rest).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_events(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let pattern = Pattern::parse(q.get("channel").map_or("*", String::as_str))?;
    p.check_subscribe(&pattern)?;
    let since = parse_num::<u64>(&q, "since")?;
    let limit = parse_num::<usize>(&q, "limit")?.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(Error::invalid("limit", "must be 1–1000").into());
    }
    let last_seq = s.hub.last_seq();
    let private_ok = p.private_ok(&pattern);
    let events = s
        .hub
        .events(Some(pattern), since, limit, private_ok)
        .await?;
    Ok(Json(
        json!({"events": events, "last_seq": last_seq, "epoch": s.hub.epoch()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    channel: String,
    event: String,
    #[serde(default)]
    data: Value,
}

pub async fn publish_event(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiJson(b): ApiJson<PublishBody>,
) -> ApiResult<Response> {
    let draft = EventDraft::new(b.channel, b.event, b.data, Source::Rest)?;
    p.check_publish(&draft.channel)?;
    let published = s.hub.publish(draft).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"seq": published.seq}))).into_response())
}

pub async fn list_channels(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"channels": s.hub.bus().channels()}))
}

pub async fn get_channel(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check_channel("name", &name)?;
    let n = s.hub.bus().subscriber_count(&name);
    let mut body = json!({"name": name, "occupied": n > 0, "subscribers": n});
    if name.starts_with("presence-") {
        body["members"] = json!([]);
    }
    Ok(Json(body))
}

pub async fn list_clients(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"clients": s.hub.bus().clients()}))
}

pub async fn list_questions(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"questions": s.hub.pending_questions()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    answer: Value,
}

pub async fn answer_question(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AnswerBody>,
) -> ApiResult<Response> {
    p.check_publish(switchboard_core::hub::QUESTIONS_CHANNEL)?;
    let published = s.hub.answer_question(&id, b.answer, Source::Rest).await?;
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

async fn publish_dev(
    s: &AppState,
    p: &Principal,
    body: &Value,
    source: Source,
) -> Result<(String, usize), Error> {
    if !body.is_object() {
        return Err(Error::bad_request(
            "bad_body",
            "the body must be a JSON object",
        ));
    }
    let event_type = required_str(body, "event_type")?.to_owned();
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let draft = EventDraft::new("dev", event_type.clone(), data, source)?;
    p.check_publish("dev")?;
    let published = s.hub.publish(draft).await?;
    Ok((event_type, published.delivered))
}

/// `POST /api/dev/webhook {event_type, data}` → `{success, message}`.
pub async fn dev_webhook(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let (event_type, _) = publish_dev(&s, &p, &body, Source::Webhook).await?;
    Ok(Json(
        json!({"success": true, "message": format!("Webhook received: {event_type}")}),
    ))
}

/// `POST /api/dev/trigger {event_type, data}` → `{success, subscribers_notified}`.
pub async fn dev_trigger(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let (_, n) = publish_dev(&s, &p, &body, Source::Webhook).await?;
    Ok(Json(json!({"success": true, "subscribers_notified": n})))
}

/// `POST /api/internal/notify {channel, event, data}`: publish, 400 naming a missing field.
pub async fn internal_notify(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    if !body.is_object() {
        return Err(Error::bad_request("bad_body", "the body must be a JSON object").into());
    }
    let channel = required_str(&body, "channel")?;
    let event = required_str(&body, "event")?;
    let data = required(&body, "data")?.clone();
    let draft = EventDraft::new(channel, event, data, Source::Webhook)?;
    p.check_publish(&draft.channel)?;
    let published = s.hub.publish(draft).await?;
    Ok(Json(
        json!({"success": true, "seq": published.seq, "subscribers_notified": published.delivered}),
    ))
}

pub async fn not_found() -> crate::error::ApiError {
    Error::not_found("no such route").into()
}
