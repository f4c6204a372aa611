//! Opening a connection, shared by WebSocket and SSE: the connect-time query (`channels=a,b&since=N&epoch=E`, or
//! `Last-Event-ID`), who the client is (its id and `Origin`), and the session itself, opened through the
//! caller so the connection cap, the subscribe rules and the joins (`global`, `user:<sub>`) come from the core.
//! It runs before the upgrade or the first byte, so a refusal is a plain HTTP error.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use switchboard_core::{Caller, ClientInfo, Error, Pattern, Resume, Session, Subscribed};

/// What a client asks for when it connects.
pub(crate) struct ConnectQuery {
    /// Patterns to subscribe to.
    pub(crate) patterns: Vec<Pattern>,
    /// Where the client left off.
    pub(crate) resume: Resume,
}

impl ConnectQuery {
    /// Parses `channels` (or `channel`; `default` when absent), `since` (or `last_event_id`, which wins) and
    /// `epoch`.
    ///
    /// # Errors
    /// 422 for a bad pattern or number.
    pub(crate) fn parse(
        q: &HashMap<String, String>,
        default: &[&str],
        last_event_id: Option<&str>,
    ) -> Result<Self, Error> {
        let list: Vec<&str> = match q.get("channels").or_else(|| q.get("channel")) {
            Some(c) => c
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect(),
            None => default.to_vec(),
        };
        let patterns = list
            .into_iter()
            .map(Pattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let since = last_event_id
            .or(q.get("since").map(String::as_str))
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| Error::invalid("since", "must be a non-negative integer"))
            })
            .transpose()?;
        Ok(ConnectQuery {
            patterns,
            resume: Resume {
                since,
                epoch: q.get("epoch").cloned(),
            },
        })
    }
}

/// The client's `Origin`, for `/api/clients`.
pub(crate) fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Opens `caller`'s session: `greeting` first, then the connect-time subscriptions (each acknowledged with what
/// `ack` makes of it) and the joins, resumed together: one replay in `seq` order.
///
/// # Errors
/// 503 at the connection cap; 403 for a pattern out of the caller's reach (nothing stays open).
pub(crate) fn open(
    caller: &Caller,
    info: ClientInfo,
    query: &ConnectQuery,
    greeting: Option<Bytes>,
    ack: impl FnMut(&Pattern, Subscribed) -> Option<Bytes>,
) -> Result<Session, Error> {
    caller.open(
        info,
        &query.patterns,
        &query.resume,
        |s| {
            if let Some(g) = greeting {
                s.send_control(g);
            }
            Ok(())
        },
        ack,
    )
}
