//! HTTP errors and the caller: the one place a [`switchboard_core::Error`] becomes a response (in the core's
//! `{"error":{"code","message"}}` shape), the JSON body and path extractors whose rejections use that shape too,
//! and the extractors that turn the guard's [`Principal`] into a [`Caller`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use switchboard_core::{Caller, Error, ErrorKind, Principal, Source};

use crate::state::AppState;

/// A core error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// The HTTP status of each kind of core error (the core says which).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (status_of(self.0.kind()), axum::Json(self.0.body())).into_response();
        if self.0.kind() == ErrorKind::RateLimited {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.0.kind() == ErrorKind::Unauthorized {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// A JSON body: malformed JSON is 400, a body over the limit 413, and a well-formed body with a bad or unknown
/// field 422 naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::body_too_large()
                } else {
                    Error::bad_request("bad_body", r.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson).map_err(ApiError)
    }
}

/// A path parameter: one that cannot be read (percent-encoded bytes that are not UTF-8, say) is 400 `bad_path`
/// in the error shape, not axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|r| ApiError(Error::bad_request("bad_path", r.body_text())))
    }
}

/// Parses JSON text into `T` with the status rules of [`ApiJson`]: typed straight from the text, so a field's
/// error names its path.
///
/// # Errors
/// 400 `bad_json` for malformed JSON, 422 `invalid_field` naming the field otherwise.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bad_json =
        |e: serde_json::Error| Error::bad_request("bad_json", format!("malformed JSON: {e}"));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return bad_json(inner);
        }
        match path.as_str() {
            "." | "" => Error::invalid("body", inner),
            p => Error::invalid(p, inner),
        }
    })?;
    de.end().map_err(bad_json)?;
    Ok(value)
}

/// The caller of a request, as decided by the guard, marked with `source`, and carrying the request's
/// `Idempotency-Key` when it sent one.
fn caller(parts: &Parts, state: &AppState, source: Source) -> Result<Caller, ApiError> {
    let p = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Error::internal("no principal on the request: the guard did not run"))?;
    let caller = state.hub.caller(p, source);
    Ok(match parts.extensions.get::<crate::idempotency::Keyed>() {
        Some(k) => k.apply(caller),
        None => caller,
    })
}

/// The caller of a REST request.
pub struct Rest(pub Caller);

impl FromRequestParts<AppState> for Rest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state, Source::Rest).map(Rest)
    }
}

/// The caller of a dev-webhook request: what it publishes is marked `webhook`.
pub struct Webhook(pub Caller);

impl FromRequestParts<AppState> for Webhook {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state, Source::Webhook).map(Webhook)
    }
}

/// The caller of a WebSocket connection.
pub struct WsCaller(pub Caller);

impl FromRequestParts<AppState> for WsCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller(parts, state, Source::Ws).map(WsCaller)
    }
}
