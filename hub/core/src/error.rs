//! The core's one error type. Every variant carries a stable machine code (`code()`) and a message safe to show
//! a client; transports map [`ErrorKind`] to their own status (HTTP status, WS error frame, MCP tool error), and
//! all of them show it in one shape, [`Error::body`].

use std::fmt;

/// What went wrong, in the words a transport needs to pick its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request could not be parsed at all (HTTP 400).
    BadRequest,
    /// A field failed validation (HTTP 422).
    Invalid,
    /// The thing named does not exist (HTTP 404).
    NotFound,
    /// `expected_version` / `If-Match` did not match (HTTP 412).
    Conflict,
    /// The same request (by its `Idempotency-Key`) is still being processed (HTTP 409).
    InProgress,
    /// A body, payload or field is over its size limit (HTTP 413).
    TooLarge,
    /// Credentials missing or wrong (HTTP 401).
    Unauthorized,
    /// Authenticated but not allowed, or a Host/Origin check failed (HTTP 403).
    Forbidden,
    /// Over a rate limit (HTTP 429).
    RateLimited,
    /// Over a capacity limit such as the connection cap, or the store is unreachable or locked (HTTP 503).
    Unavailable,
    /// The disk holding the database is full: the write is refused whole, and reads go on (HTTP 507).
    InsufficientStorage,
    /// A fault inside the hub (HTTP 500); the message is generic and the cause is logged once.
    Internal,
}

impl ErrorKind {
    /// The HTTP status of this kind, for every transport that speaks HTTP.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Invalid => 422,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 412,
            ErrorKind::InProgress => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::InsufficientStorage => 507,
            ErrorKind::Internal => 500,
        }
    }
}

/// An error from the core, with a stable `code` and a client-safe `message`.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    code: &'static str,
    message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// The core's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a stable `code` and a message safe to show.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
        }
    }
    /// The request could not be parsed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, message)
    }
    /// A field failed validation; the message names the field.
    pub fn invalid(field: &str, why: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Invalid,
            "invalid_field",
            format!("{field}: {why}"),
        )
    }
    /// The request is well-formed but cannot be taken, for the reason `code` names (HTTP 422).
    pub fn invalid_with(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }
    /// The thing named does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", what)
    }
    /// `expected_version` did not match.
    pub fn conflict(expected: i64, actual: i64) -> Self {
        Self::new(
            ErrorKind::Conflict,
            "version_conflict",
            format!("expected version {expected}, current version is {actual}"),
        )
    }
    /// A payload or field is over its size limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, "payload_too_large", message)
    }
    /// Credentials are missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, "unauthorized", message)
    }
    /// The caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", message)
    }
    /// Over a rate limit.
    pub fn rate_limited() -> Self {
        Self::new(
            ErrorKind::RateLimited,
            "rate_limited",
            "too many requests; slow down",
        )
    }
    /// An internal fault. The cause is logged here, once; the client sees a generic message.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorKind::Internal, "internal", "internal error")
    }
    /// A request body or client frame over [`MAX_BODY_BYTES`](crate::limits::MAX_BODY_BYTES).
    pub fn body_too_large() -> Self {
        Self::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            "the request is over the 1 MiB limit",
        )
    }
    /// The same error about item `i` of a batch: a field error names it as `[i].field`, others get `[i]: `.
    pub fn at_index(self, i: usize) -> Self {
        let message = if self.kind == ErrorKind::Invalid {
            format!("[{i}].{}", self.message)
        } else {
            format!("[{i}]: {}", self.message)
        };
        Self { message, ..self }
    }
    /// What went wrong, for picking a status.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }
    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The error as every transport shows it: `{"error":{"code","message"}}` (SPEC §3).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

/// When the last "disk full" warning was logged: one per [`DISK_FULL_WARN_GAP`], however many writes fail.
static DISK_FULL_WARNED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
const DISK_FULL_WARN_GAP: std::time::Duration = std::time::Duration::from_secs(5);

impl Error {
    /// The database's disk is full (SQLite's `SQLITE_FULL`): 507, logged as a warning at most every 5 s.
    pub fn storage_full() -> Self {
        let mut last = DISK_FULL_WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= DISK_FULL_WARN_GAP) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(
                "the disk holding the database is full: writes are refused until space is freed"
            );
        }
        Self::new(
            ErrorKind::InsufficientStorage,
            "insufficient_storage",
            "the disk holding the hub's database is full; nothing was written. Free some space and retry",
        )
    }

    /// Another process holds a lock on the database (SQLite's `SQLITE_BUSY`/`SQLITE_LOCKED`) past the busy
    /// timeout.
    pub fn database_locked() -> Self {
        Self::new(
            ErrorKind::Unavailable,
            "database_locked",
            "the database is locked by another process",
        )
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::storage_full(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::database_locked(),
            _ => Error::internal(format_args!("sqlite: {e}")),
        }
    }
}
