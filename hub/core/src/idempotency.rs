//! `Idempotency-Key` (SPEC §3): a retried write is done once. A key is scoped to (caller, method, path); the
//! outcome of the first write is kept in the store with the write itself, in the same transaction, so a retry after
//! a lost answer, a SIGKILL or on another hub gets that outcome back and changes nothing. The same key with another
//! body is refused (422 `idempotency_conflict`); a duplicate that arrives while the first is still being written is
//! refused too (409 `idempotency_in_flight`). Keys are kept for [`KEY_TTL`].
//!
//! - [`RequestKey`]: what a transport hands the core (the key, the method and path, the SHA-256 of the raw body).
//! - `CallerKey`: a [`Caller`](crate::Caller)'s key, its id made from the caller and the request, and whether the
//!   answer was a replay.
//! - `KeyRecord`: what the writer checks and keeps inside the write's transaction.
//! - `Outcome`: what a kept write answered: its agent or agents and the seqs of its events.
//! - `InFlight`: the keys this hub is writing now.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Agent;

/// How long a key is kept: a retry after that is a new request.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// An `Idempotency-Key` as a transport received it.
#[derive(Debug, Clone)]
pub struct RequestKey {
    key: String,
    method: String,
    path: String,
    body_sha256: String,
}

impl RequestKey {
    /// The key `key` of a `method` request on `path` whose raw body is `body`.
    ///
    /// # Errors
    /// 400 `bad_idempotency_key` unless the key is 1–255 printable ASCII characters.
    pub fn new(key: &str, method: &str, path: &str, body: &[u8]) -> Result<Self> {
        if key.is_empty()
            || key.len() > MAX_KEY_CHARS
            || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(Error::bad_request(
                "bad_idempotency_key",
                format!("Idempotency-Key must be 1–{MAX_KEY_CHARS} printable ASCII characters"),
            ));
        }
        Ok(RequestKey {
            key: key.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            body_sha256: hex::encode(Sha256::digest(body)),
        })
    }
}

/// Who a caller is, as far as the scope of its keys goes.
fn caller_id(p: &Principal) -> String {
    match p {
        Principal::Owner => "owner".into(),
        Principal::Anonymous => "anonymous".into(),
        Principal::Jwt(c) => format!("jwt:{:?}:{:?}:{:?}", c.sub, c.channels, c.publish),
    }
}

/// A caller's key: its id in the store (the caller, method, path and key, hashed) and its body's hash.
#[derive(Debug)]
pub(crate) struct CallerKey {
    pub(crate) id: String,
    pub(crate) body: String,
    replayed: AtomicBool,
}

impl CallerKey {
    pub(crate) fn new(principal: &Principal, k: RequestKey) -> Arc<Self> {
        let mut h = Sha256::new();
        for part in [caller_id(principal).as_str(), &k.method, &k.path, &k.key] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Arc::new(CallerKey {
            id: hex::encode(h.finalize()),
            body: k.body_sha256,
            replayed: AtomicBool::new(false),
        })
    }

    pub(crate) fn mark_replayed(&self) {
        self.replayed.store(true, Ordering::Release);
    }

    pub(crate) fn replayed(&self) -> bool {
        self.replayed.load(Ordering::Acquire)
    }
}

/// What the writer checks and keeps, in the write's transaction. Times are RFC 3339 UTC (they compare as text).
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    pub(crate) id: String,
    pub(crate) body: String,
    /// Now, by the hub's clock.
    pub(crate) at: String,
    /// A kept key made at or before this has expired.
    pub(crate) expired_by: String,
}

/// A key as the store keeps it.
#[derive(Debug, Clone)]
pub(crate) struct KeptKey {
    pub(crate) body: String,
    pub(crate) outcome: String,
    pub(crate) created_at: String,
}

impl KeyRecord {
    /// What a kept key means for this request: `None` when it is absent or expired, the first outcome for the same
    /// body, and 422 for another body.
    pub(crate) fn check(&self, kept: Option<KeptKey>) -> Result<Option<Outcome>> {
        let Some(k) = kept.filter(|k| k.created_at > self.expired_by) else {
            return Ok(None);
        };
        if k.body != self.body {
            return Err(Error::invalid_with(
                "idempotency_conflict",
                "this Idempotency-Key was used with another body; send a new key for a new request",
            ));
        }
        serde_json::from_str(&k.outcome)
            .map(Some)
            .map_err(Error::internal)
    }
}

/// What a write answered, kept with its key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Outcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<Agent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) agents: Vec<Agent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) seqs: Vec<u64>,
}

/// The keys this hub is writing now: a duplicate meanwhile is 409.
#[derive(Debug, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashSet<String>>>);

/// A key taken by [`InFlight::claim`]; released on drop.
pub(crate) struct Claim {
    set: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl InFlight {
    /// Takes `id` for the length of one write.
    ///
    /// # Errors
    /// 409 `idempotency_in_flight` while a request with the same key is being written.
    pub(crate) fn claim(&self, id: &str) -> Result<Claim> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(id.to_owned()) {
            return Err(Error::new(
                ErrorKind::InProgress,
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still being processed; retry when it has answered",
            ));
        }
        Ok(Claim {
            set: self.0.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_and_scoped_to_caller_method_and_path() {
        assert!(RequestKey::new("", "POST", "/api/agents", b"").is_err());
        assert!(RequestKey::new("a\nb", "POST", "/api/agents", b"").is_err());
        assert!(RequestKey::new(&"k".repeat(256), "POST", "/api/agents", b"").is_err());
        let k = RequestKey::new(&"k".repeat(255), "POST", "/api/agents", b"{}").unwrap();
        let id = |p: &Principal, k: &RequestKey| CallerKey::new(p, k.clone()).id.clone();
        let other_path = RequestKey::new(&"k".repeat(255), "POST", "/api/events", b"{}").unwrap();
        assert_eq!(id(&Principal::Owner, &k), id(&Principal::Owner, &k));
        assert_ne!(id(&Principal::Owner, &k), id(&Principal::Anonymous, &k));
        assert_ne!(
            id(&Principal::Owner, &k),
            id(&Principal::Owner, &other_path)
        );
    }

    #[test]
    fn a_kept_key_answers_its_body_refuses_another_and_expires() {
        let rec = KeyRecord {
            id: "x".into(),
            body: "b1".into(),
            at: "2026-01-02T00:00:00.000Z".into(),
            expired_by: "2026-01-01T00:00:00.000Z".into(),
        };
        let kept = |body: &str, at: &str| KeptKey {
            body: body.into(),
            outcome: r#"{"seqs":[7]}"#.into(),
            created_at: at.into(),
        };
        let o = rec
            .check(Some(kept("b1", "2026-01-01T12:00:00.000Z")))
            .unwrap();
        assert_eq!(o.unwrap().seqs, [7]);
        let e = rec
            .check(Some(kept("b2", "2026-01-01T12:00:00.000Z")))
            .unwrap_err();
        assert_eq!(e.code(), "idempotency_conflict");
        assert!(
            rec.check(Some(kept("b2", "2026-01-01T00:00:00.000Z")))
                .unwrap()
                .is_none()
        );
        assert!(rec.check(None).unwrap().is_none());
    }

    #[test]
    fn a_claim_holds_the_key_until_dropped() {
        let f = InFlight::default();
        let c = f.claim("a").unwrap();
        assert_eq!(
            f.claim("a").err().map(|e| e.code()),
            Some("idempotency_in_flight")
        );
        drop(c);
        assert!(f.claim("a").is_ok());
    }
}
