//! Server-sent events (SPEC §5): `/events` carries envelopes as unnamed messages with `id:` = seq and resumes
//! from `Last-Event-ID`; `/api/dev/events` is the dev-webhook compatibility stream of `{type, data, timestamp}`.
//! A slow consumer's stream simply ends; `EventSource` reconnects with `Last-Event-ID` and resumes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use switchboard_core::{ClientInfo, Delivery, Event, Principal, Session};
use tokio_util::sync::CancellationToken;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::ws::{connect_subs, subscribe_all};

fn last_event_id(h: &HeaderMap) -> Option<&str> {
    h.get("last-event-id").and_then(|v| v.to_str().ok())
}

fn open(
    state: &AppState,
    p: &Principal,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    default: &[&str],
) -> ApiResult<Session> {
    state.admit_connection()?;
    let subs = connect_subs(q, default, last_event_id(headers), p)?;
    let session = state.hub.connect(ClientInfo {
        id: uuid::Uuid::new_v4().to_string(),
        transport: "sse",
        origin: headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        user: p.user().map(str::to_owned),
    });
    subscribe_all(session.handle(), &subs, p, |_, _| None);
    Ok(session)
}

/// Turns a session into an SSE stream that ends on shutdown or when the bus cuts the session off.
fn stream(
    session: Session,
    shutdown: CancellationToken,
    first: Option<SseEvent>,
    map: fn(&Event) -> SseEvent,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(
        (session, shutdown, first),
        move |(mut session, shutdown, first)| async move {
            if let Some(f) = first {
                return Some((Ok(f), (session, shutdown, None)));
            }
            loop {
                let d = tokio::select! {
                    () = shutdown.cancelled() => return None,
                    d = session.next() => d?,
                };
                if let Delivery::Event(e) = d {
                    return Some((Ok(map(&e)), (session, shutdown, None)));
                }
            }
        },
    )
}

fn keep_alive() -> KeepAlive {
    KeepAlive::new()
        .interval(Duration::from_secs(15))
        .text("ping")
}

/// `GET /events?channels=…&since=…`; every channel (`*`) when none is named.
pub async fn events(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let session = open(&state, &p, &q, &headers, &["*"])?;
    let map = |e: &Event| {
        SseEvent::default()
            .id(e.seq().to_string())
            .data(std::str::from_utf8(e.json()).unwrap_or("{}"))
    };
    Ok(Sse::new(stream(session, state.shutdown.clone(), None, map)).keep_alive(keep_alive()))
}

/// `GET /api/dev/events`: `{"type":"connected",…}` first, then `{type, data, timestamp}` for every event.
pub async fn dev_events(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let session = open(&state, &p, &q, &headers, &["*"])?;
    let first = SseEvent::default()
        .data(json!({"type": "connected", "message": "SSE connected"}).to_string());
    let map = |e: &Event| {
        let body = json!({"type": e.event(), "data": e.data(), "timestamp": e.ts()});
        SseEvent::default()
            .id(e.seq().to_string())
            .data(body.to_string())
    };
    Ok(
        Sse::new(stream(session, state.shutdown.clone(), Some(first), map))
            .keep_alive(keep_alive()),
    )
}
