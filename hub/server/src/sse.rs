//! Server-sent events (SPEC §5): `/events` carries envelopes as unnamed messages with `id:` = seq and resumes
//! from `Last-Event-ID`; `/api/dev/events` is the dev-webhook compatibility stream of `{type, data, timestamp}`.
//! A slow consumer's stream simply ends; `EventSource` reconnects with `Last-Event-ID` and resumes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use switchboard_core::{ClientInfo, Delivery, Event, Session};
use tokio_util::sync::CancellationToken;

use crate::connect::{ConnectQuery, origin};
use crate::error::{ApiError, ApiResult, Rest};
use crate::state::AppState;

/// What opening an SSE stream needs, from the request: the caller, the query and `Last-Event-ID`.
pub struct SseRequest(Session);

impl FromRequestParts<AppState> for SseRequest {
    type Rejection = ApiError;

    /// Opens the session: every channel (`*`) when none is named; `Last-Event-ID` wins over `since`.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Rest(caller) = Rest::from_request_parts(parts, state).await?;
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|r| switchboard_core::Error::bad_request("bad_query", r.body_text()))?;
        let headers: &HeaderMap = &parts.headers;
        let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
        let query = ConnectQuery::parse(&q, &["*"], last_event_id)?;
        let info = ClientInfo {
            origin: origin(headers),
            ..ClientInfo::new("sse")
        };
        let session = crate::connect::open(&caller, info, &query, None, |_, _| None)?;
        Ok(SseRequest(session))
    }
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
    SseRequest(session): SseRequest,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
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
    SseRequest(session): SseRequest,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
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
