//! Pusher over HTTP (SPEC §7): the signed HTTP API the `pusher` server SDKs call, the built-in channel and user
//! authorization endpoints pusher-js calls, and the app's public settings.
//!
//! A signed API request's caller comes from its signature ([`Hub::pusher_api_caller`](switchboard_core::Hub)),
//! checked in the core; `/pusher/auth` and `/pusher/user-auth` sign only what the request's own caller (from the
//! guard) may do ([`Caller::pusher_channel_auth`], [`Caller::pusher_user_auth`]).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{Caller, Error, Source};

use super::{hub_channel, new_event, wire_channel};
use crate::error::{ApiError, ApiPath, ApiResult, Rest, parse_json};
use crate::state::AppState;

/// Most channels one `/events` request may name, as Pusher allows.
const MAX_CHANNELS_PER_EVENT: usize = 100;
/// Most events one `/batch_events` request may carry, as Pusher allows.
const MAX_BATCH: usize = 10;

/// A signed HTTP API request: the caller its signature stands for (checked in the core), its query and body.
pub struct Signed {
    caller: Caller,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl FromRequest<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        // `/apps/{app_id}/…`
        let app_id = parts.uri.path().split('/').nth(2).unwrap_or("");
        if app_id != state.hub.pusher().app_id() {
            return Err(Error::not_found(format!("no Pusher app {app_id:?} on this hub")).into());
        }
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
                .map_err(|e| Error::bad_request("bad_query", format!("{e}")))?;
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| Error::body_too_large())?;
        let caller =
            state
                .hub
                .pusher_api_caller(parts.method.as_str(), parts.uri.path(), &query, &body)?;
        Ok(Signed {
            caller,
            query,
            body,
        })
    }
}

/// One event to trigger: `channels` (or `channel`), `name`, `data` (a string), `socket_id` to leave out.
#[derive(Deserialize)]
struct Trigger {
    name: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

/// Publishes one trigger on each of its channels; the `info` the request asked for, per channel.
async fn trigger(caller: &Caller, t: Trigger) -> Result<Value, Error> {
    let channels = match (t.channels, t.channel) {
        (Some(list), _) if !list.is_empty() => list,
        (_, Some(c)) => vec![c],
        _ => return Err(Error::invalid("channels", "name at least one channel")),
    };
    if channels.len() > MAX_CHANNELS_PER_EVENT {
        return Err(Error::invalid(
            "channels",
            format_args!("at most {MAX_CHANNELS_PER_EVENT} channels per event"),
        ));
    }
    let names = channels
        .iter()
        .map(|c| hub_channel("channels", c))
        .collect::<Result<Vec<_>, _>>()?;
    // Checked, all of them, before anything is published.
    let writes: Vec<_> = names
        .iter()
        .map(|c| {
            caller.publish_except(
                new_event(c.clone(), t.name.clone(), t.data.clone()),
                t.socket_id.clone(),
            )
        })
        .collect();
    for w in writes {
        w.await?;
    }
    let Some(info) = t.info else {
        return Ok(json!({}));
    };
    let mut out = Map::new();
    for (wire, name) in channels.iter().zip(&names) {
        out.insert(wire.clone(), channel_info(caller, name, &info)?);
    }
    Ok(json!({ "channels": out }))
}

/// `subscription_count` and `user_count`, as `info` asks.
fn channel_info(caller: &Caller, name: &str, info: &str) -> Result<Value, Error> {
    let snap = caller.channel(name)?;
    let mut v = Map::new();
    for field in info.split(',').map(str::trim) {
        match field {
            "subscription_count" => {
                v.insert(field.into(), json!(snap.subscribers));
            }
            "user_count" if snap.members.is_some() => {
                v.insert(
                    field.into(),
                    json!(snap.members.as_ref().map_or(0, Vec::len)),
                );
            }
            _ => {}
        }
    }
    Ok(Value::Object(v))
}

/// `POST /apps/{app_id}/events`.
pub async fn events(s: Signed) -> ApiResult<Json<Value>> {
    let t: Trigger = parse_json(&s.body)?;
    Ok(Json(trigger(&s.caller, t).await?))
}

#[derive(Deserialize)]
struct Batch {
    batch: Vec<Trigger>,
}

/// `POST /apps/{app_id}/batch_events`.
pub async fn batch_events(s: Signed) -> ApiResult<Json<Value>> {
    let caller = s.caller;
    let b: Batch = parse_json(&s.body)?;
    if b.batch.len() > MAX_BATCH {
        return Err(Error::invalid(
            "batch",
            format_args!("at most {MAX_BATCH} events per batch"),
        )
        .into());
    }
    let wants_info = b.batch.iter().any(|t| t.info.is_some());
    let mut out = Vec::with_capacity(b.batch.len());
    for t in b.batch {
        let r = trigger(&caller, t).await?;
        out.push(
            r.get("channels")
                .and_then(|c| c.as_object())
                .and_then(|c| c.values().next().cloned())
                .unwrap_or(json!({})),
        );
    }
    Ok(Json(if wants_info {
        json!({ "batch": out })
    } else {
        json!({})
    }))
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// `GET /apps/{app_id}/channels?filter_by_prefix=&info=user_count`: the occupied channels.
pub async fn channels(s: Signed) -> ApiResult<Json<Value>> {
    let (caller, q) = (s.caller, s.query);
    let prefix = get(&q, "filter_by_prefix").unwrap_or("");
    let info = get(&q, "info").unwrap_or("");
    if info.split(',').any(|f| f.trim() == "user_count") && !prefix.starts_with("presence-") {
        return Err(Error::invalid("info", "user_count needs filter_by_prefix=presence-").into());
    }
    let mut out = Map::new();
    for c in caller.channels() {
        let wire = wire_channel(&c.name);
        if !wire.starts_with(prefix) || c.subscribers == 0 {
            continue;
        }
        out.insert(wire, channel_info(&caller, &c.name, info)?);
    }
    Ok(Json(json!({ "channels": out })))
}

/// `GET /apps/{app_id}/channels/{name}?info=subscription_count,user_count`.
pub async fn channel(
    ApiPath((_, name)): ApiPath<(String, String)>,
    s: Signed,
) -> ApiResult<Json<Value>> {
    let (caller, q) = (s.caller, s.query);
    let hub_name = hub_channel("name", &name)?;
    let snap = caller.channel(&hub_name)?;
    let mut v = channel_info(&caller, &hub_name, get(&q, "info").unwrap_or(""))?;
    v["occupied"] = json!(snap.subscribers > 0);
    Ok(Json(v))
}

/// `GET /apps/{app_id}/channels/{name}/users`: a presence channel's members.
pub async fn channel_users(
    ApiPath((_, name)): ApiPath<(String, String)>,
    s: Signed,
) -> ApiResult<Json<Value>> {
    let caller = s.caller;
    let hub_name = hub_channel("name", &name)?;
    if !hub_name.starts_with("presence-") {
        return Err(Error::invalid("name", "only presence channels have users").into());
    }
    let users: Vec<Value> = caller
        .channel(&hub_name)?
        .members
        .unwrap_or_default()
        .into_iter()
        .map(|m| json!({ "id": m.user_id }))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`.
pub async fn terminate_connections(
    ApiPath((_, user)): ApiPath<(String, String)>,
    s: Signed,
) -> ApiResult<Json<Value>> {
    s.caller.terminate_user(&user)?;
    Ok(Json(json!({})))
}

/// A form body (what pusher-js posts) or a JSON object, as string fields.
fn form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, Error> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let v: Map<String, Value> = parse_json(body)?;
        return Ok(v
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                v => (k, v.to_string()),
            })
            .collect());
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| Error::bad_request("bad_body", format!("expected a form body: {e}")))
}

fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> Result<&'a str, Error> {
    f.get(k)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::invalid(k, "is required"))
}

/// `POST /pusher/auth` (`socket_id`, `channel_name`; for presence `channel_data`, or `user_id` and
/// `user_info`): `{auth, channel_data?}` for what the caller may read.
pub async fn channel_auth(
    Rest(caller): Rest,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let f = form(&headers, &body)?;
    let channel_data = match (f.get("channel_data"), f.get("user_id")) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(u)) => {
            let info = match f.get("user_info") {
                Some(i) => serde_json::from_str(i).unwrap_or(Value::String(i.clone())),
                None => Value::Null,
            };
            Some(json!({"user_id": u, "user_info": info}).to_string())
        }
        (None, None) => None,
    };
    Ok(Json(caller.pusher_channel_auth(
        field(&f, "socket_id")?,
        field(&f, "channel_name")?,
        channel_data,
    )?))
}

/// `POST /pusher/user-auth` (`socket_id`, and `user_data` unless the caller's JWT names its user):
/// `{auth, user_data}` for `pusher:signin`.
pub async fn user_auth(
    Rest(caller): Rest,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let f = form(&headers, &body)?;
    Ok(Json(caller.pusher_user_auth(
        field(&f, "socket_id")?,
        f.get("user_data").cloned(),
    )?))
}

/// `GET /api/pusher/config`: what a webapp passes to `new Pusher(key, …)`; never the secret.
pub async fn config(State(state): State<AppState>, Rest(_): Rest) -> Json<Value> {
    let app = state.hub.pusher();
    let addr = state.url.trim_start_matches("http://");
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "80"));
    Json(json!({
        "app_id": app.app_id(),
        "key": app.key(),
        "host": host,
        "port": port.parse::<u16>().unwrap_or(80),
        "ws_url": format!("ws://{addr}/app/{}?protocol=7", app.key()),
        "auth_endpoint": format!("{}/pusher/auth", state.url),
        "user_auth_endpoint": format!("{}/pusher/user-auth", state.url),
        "client_options": {
            "wsHost": host, "wsPort": port.parse::<u16>().unwrap_or(80), "forceTLS": false,
            "enabledTransports": ["ws"], "cluster": "local",
            "channelAuthorization": {"endpoint": format!("{}/pusher/auth", state.url), "transport": "ajax"},
            "userAuthentication": {"endpoint": format!("{}/pusher/user-auth", state.url), "transport": "ajax"},
        },
        "channel_spelling": "hub ':' is ';' on Pusher (agent:7f3c is agent;7f3c); a literal ';' is =3B and '=' is =3D",
        "source": Source::Pusher,
    }))
}
