//! HTTP errors: the one place a [`switchboard_core::Error`] becomes a response, and the JSON body extractor whose
//! rejections use the same `{"error":{"code","message"}}` shape.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use switchboard_core::{Error, ErrorKind};

/// A core error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::PRECONDITION_FAILED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON error body every transport shares.
pub fn error_body(e: &Error) -> serde_json::Value {
    json!({"error": {"code": e.code(), "message": e.message()}})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (status_of(self.0.kind()), axum::Json(error_body(&self.0))).into_response();
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
                    Error::too_large("request body is over 1 MiB")
                } else {
                    Error::bad_request("bad_body", r.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson).map_err(ApiError)
    }
}

/// Parses JSON text into `T` with the status rules of [`ApiJson`].
///
/// # Errors
/// 400 `bad_json` for malformed JSON, 422 `invalid_field` naming the field otherwise.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::bad_request("bad_json", format!("malformed JSON: {e}")))?;
    from_value(value)
}

/// Deserialises already-parsed JSON, answering 422 `invalid_field` naming the field on a mismatch.
///
/// # Errors
/// 422 `invalid_field`.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        match path.as_str() {
            "." | "" => Error::invalid("body", inner),
            p => Error::invalid(p, inner),
        }
    })
}
