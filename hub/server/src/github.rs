//! `POST /api/webhooks/github` (SPEC §3): a GitHub delivery, checked by its `X-Hub-Signature-256` over the raw
//! body (the core decides, see `Hub::github_caller`) and published on `project:<owner>.<repo>`. JSON and
//! form-encoded (`payload=…`) deliveries are both accepted, as GitHub sends either.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchboard_core::github::{Mapped, map};
use switchboard_core::{Error, NewEvent};

use crate::error::{ApiResult, parse_json};
use crate::state::AppState;

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The delivery's JSON: the body, or its `payload` field when form-encoded.
fn payload(headers: &HeaderMap, body: &[u8]) -> Result<Value, Error> {
    let form = header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return parse_json(body);
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Error::bad_request("bad_body", format!("malformed form body: {e}")))?;
    let p = fields
        .into_iter()
        .find(|(k, _)| k == "payload")
        .ok_or_else(|| Error::bad_request("missing_field", "missing field: payload"))?;
    parse_json(p.1.as_bytes())
}

/// One delivery: 202 `{seq, channel, event}` when published, 200 `{published: false, reason}` for `ping` and
/// the delivery types that are not mapped; 401 and nothing published when unsigned or wrongly signed.
pub async fn delivery(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let caller = s
        .hub
        .github_caller(&body, header_str(&headers, "x-hub-signature-256"))?;
    let kind = header_str(&headers, "x-github-event")
        .ok_or_else(|| Error::bad_request("missing_field", "missing header: X-GitHub-Event"))?;
    let p = payload(&headers, &body)?;
    match map(kind, &p)? {
        Mapped::Ignored(reason) => {
            Ok(Json(json!({"published": false, "reason": reason})).into_response())
        }
        Mapped::Publish {
            channel,
            event,
            data,
        } => {
            let published = caller
                .publish(NewEvent::new(channel.clone(), event.clone(), data))
                .await?;
            let body = json!({"published": true, "seq": published.seq, "channel": channel, "event": event});
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}
