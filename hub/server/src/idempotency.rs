//! `Idempotency-Key` on the REST mutations (SPEC §3). The layer reads the key and hashes the raw body; the request's
//! caller ([`Rest`](crate::error::Rest), [`Webhook`](crate::error::Webhook)) then carries it into the core, which
//! does the write once and keeps its outcome with it. A retry's answer is the first one again, marked
//! `Idempotent-Replayed: true`.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{Caller, Error, RequestKey};

use crate::error::ApiError;

/// The header a client sends.
pub const HEADER: &str = "idempotency-key";
/// The header on an answer that repeats the first one.
pub const REPLAYED: &str = "idempotent-replayed";

/// What the layer leaves on a keyed request: the key, and a slot where the request's caller is left so the layer
/// can tell afterwards whether the answer was a replay.
#[derive(Clone)]
pub(crate) struct Keyed {
    pub(crate) key: RequestKey,
    caller: Arc<Mutex<Option<Caller>>>,
}

impl Keyed {
    /// `caller` with the key; remembered for the answer's header.
    pub(crate) fn apply(&self, caller: Caller) -> Caller {
        let keyed = caller.with_idempotency_key(self.key.clone());
        *self.caller.lock().unwrap_or_else(|p| p.into_inner()) = Some(keyed.clone());
        keyed
    }
}

fn mutation(m: &Method) -> bool {
    [Method::POST, Method::PATCH, Method::DELETE, Method::PUT].contains(m)
}

/// The layer: for a mutation under `/api/` with an `Idempotency-Key`, reads the body (to hash it, as sent) and
/// puts it back; a bad key is 400 and a body over the limit 413, before anything runs.
pub async fn layer(req: Request, next: Next) -> Response {
    let key = req.headers().get(HEADER).cloned();
    let Some(key) = key.filter(|_| mutation(req.method()) && req.uri().path().starts_with("/api/"))
    else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return ApiError(Error::body_too_large()).into_response(),
    };
    let key = match key
        .to_str()
        .map_err(|_| {
            Error::bad_request(
                "bad_idempotency_key",
                "Idempotency-Key must be printable ASCII",
            )
        })
        .and_then(|k| RequestKey::new(k, parts.method.as_str(), parts.uri.path(), &bytes))
    {
        Ok(k) => k,
        Err(e) => return ApiError(e).into_response(),
    };
    let keyed = Keyed {
        key,
        caller: Arc::new(Mutex::new(None)),
    };
    parts.extensions.insert(keyed.clone());
    let mut res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let replayed = keyed
        .caller
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(Caller::replayed);
    if replayed && res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        res.headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    res
}
