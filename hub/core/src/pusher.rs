//! The Pusher app (SPEC §7): its credentials, the signatures made with its secret, and the spelling of hub
//! channels on the Pusher wire.
//!
//! - [`PusherApp`]: app id, key and secret, from the config or created on first start in `<data dir>/pusher.json`
//!   (mode 0600). The secret is a [`Secret`]: compared in constant time, never logged or shown.
//! - Signatures: channel auth (`socket_id:channel[:channel_data]`), user sign-in (`socket_id::user::user_data`)
//!   and signed HTTP API requests (`METHOD\nPATH\nsorted query`, `body_md5`, a ±600 s timestamp window). Checking
//!   a signature is how the core decides that a Pusher caller may do something; the adapters only hand them in.
//! - [`to_wire`] / [`from_wire`]: Pusher's channel grammar has no `:`, and the official server SDKs refuse it, so
//!   on the Pusher transport `:` is written `;`, and a literal `;` or `=` is escaped as `=3B` / `=3D`
//!   (`agent:7f3c` ↔ `agent;7f3c`). Every hub channel has exactly one Pusher spelling and back.

use std::path::Path;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{Secret, write_private};
use crate::error::{Error, ErrorKind, Result};

/// How far a signed HTTP API request's `auth_timestamp` may be from the hub's clock, in seconds.
pub const API_TIMESTAMP_WINDOW_S: i64 = 600;

/// The Pusher app settings a hub starts with: each one absent is read from `<data dir>/pusher.json`, or created.
#[derive(Debug, Clone, Default)]
pub struct PusherConfig {
    /// `--pusher-app-id`.
    pub app_id: Option<String>,
    /// `--pusher-key`.
    pub key: Option<String>,
    /// `--pusher-secret`.
    pub secret: Option<String>,
}

/// The hub's Pusher app.
#[derive(Debug, Clone)]
pub struct PusherApp {
    app_id: String,
    key: String,
    secret: Secret,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    app_id: String,
    key: String,
    secret: String,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

type HmacSha256 = Hmac<Sha256>;

pub(crate) fn hmac_hex(secret: &Secret, msg: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl PusherApp {
    /// An app with these credentials.
    pub fn new(app_id: impl Into<String>, key: impl Into<String>, secret: Secret) -> Self {
        PusherApp {
            app_id: app_id.into(),
            key: key.into(),
            secret,
        }
    }

    /// The app from `cfg`, filling what it leaves out from `<dir>/pusher.json`, which is created (mode 0600) with
    /// random credentials on first start.
    ///
    /// # Errors
    /// `Internal` when the file cannot be read, parsed or written.
    pub fn load_or_create(dir: &Path, cfg: &PusherConfig) -> Result<Self> {
        if let (Some(app_id), Some(key), Some(secret)) = (&cfg.app_id, &cfg.key, &cfg.secret) {
            return Ok(PusherApp::new(app_id, key, Secret::new(secret.clone())));
        }
        let path = dir.join("pusher.json");
        let stored = match std::fs::read_to_string(&path) {
            Ok(s) => serde_json::from_str::<Stored>(&s).map_err(|e| {
                Error::internal(format_args!("{} is not valid: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut id = [0u8; 4];
                rand::rng().fill_bytes(&mut id);
                let s = Stored {
                    app_id: (100_000 + u32::from_le_bytes(id) % 900_000).to_string(),
                    key: random_hex(10),
                    secret: random_hex(16),
                };
                let text = serde_json::to_string_pretty(&s).map_err(Error::internal)?;
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::internal(format_args!("creating {}: {e}", dir.display()))
                })?;
                write_private(&path, &text).map_err(|e| {
                    Error::internal(format_args!("writing {}: {e}", path.display()))
                })?;
                tracing::info!(path = %path.display(), app_id = %s.app_id, "created Pusher app credentials");
                s
            }
            Err(e) => {
                return Err(Error::internal(format_args!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(PusherApp {
            app_id: cfg.app_id.clone().unwrap_or(stored.app_id),
            key: cfg.key.clone().unwrap_or(stored.key),
            secret: Secret::new(cfg.secret.clone().unwrap_or(stored.secret)),
        })
    }

    /// The app id (public).
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The app key (public: webapps embed it).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The secret, for the desktop window only; never logged.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Is `key` this app's key? Constant time.
    pub fn key_matches(&self, key: &str) -> bool {
        Secret::new(self.key.clone()).matches(key)
    }

    /// `key:signature` authorising `socket_id` on the wire channel `channel` (with `channel_data` for presence).
    pub(crate) fn channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        let msg = match channel_data {
            Some(d) => format!("{socket_id}:{channel}:{d}"),
            None => format!("{socket_id}:{channel}"),
        };
        format!("{}:{}", self.key, hmac_hex(&self.secret, &msg))
    }

    /// Does `auth` authorise `socket_id` on `channel`? Constant time.
    pub(crate) fn verify_channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
        auth: &str,
    ) -> bool {
        Secret::new(self.channel_auth(socket_id, channel, channel_data)).matches(auth)
    }

    /// `key:signature` signing `user_data` in for `socket_id` (`pusher:signin`).
    pub(crate) fn user_auth(&self, socket_id: &str, user_data: &str) -> String {
        let msg = format!("{socket_id}::user::{user_data}");
        format!("{}:{}", self.key, hmac_hex(&self.secret, &msg))
    }

    /// Checks a signed HTTP API request: `auth_key` is this app's key, `auth_version` 1.0, `auth_timestamp`
    /// within [`API_TIMESTAMP_WINDOW_S`] of `now_unix`, `body_md5` the MD5 of a non-empty body, and
    /// `auth_signature` the HMAC-SHA256 of `METHOD\nPATH\nquery` (every parameter but the signature, keys lower
    /// case and sorted), compared in constant time.
    ///
    /// # Errors
    /// `Unauthorized`, saying which part is wrong (never the expected signature).
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
        now_unix: i64,
    ) -> Result<()> {
        let unauthorized = |code: &'static str, msg: &str| {
            Error::new(ErrorKind::Unauthorized, code, msg.to_owned())
        };
        let get = |k: &str| {
            query
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let key =
            get("auth_key").ok_or_else(|| unauthorized("unauthorized", "auth_key is missing"))?;
        if !self.key_matches(key) {
            return Err(unauthorized("unauthorized", "unknown auth_key"));
        }
        if get("auth_version") != Some("1.0") {
            return Err(unauthorized("unauthorized", "auth_version must be 1.0"));
        }
        let ts: i64 = get("auth_timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                unauthorized("unauthorized", "auth_timestamp is missing or not a number")
            })?;
        if (now_unix - ts).abs() > API_TIMESTAMP_WINDOW_S {
            return Err(unauthorized(
                "stale_request",
                "auth_timestamp is more than 600 s from the hub's clock",
            ));
        }
        if !body.is_empty() {
            let md5 = hex::encode(Md5::digest(body));
            if get("body_md5").is_none_or(|m| !Secret::new(md5).matches(&m.to_ascii_lowercase())) {
                return Err(unauthorized(
                    "unauthorized",
                    "body_md5 does not match the body",
                ));
            }
        }
        let signature = get("auth_signature")
            .ok_or_else(|| unauthorized("unauthorized", "auth_signature is missing"))?;
        let mut params: Vec<(String, &str)> = query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
            .collect();
        params.sort();
        let sorted = params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let expected = hmac_hex(
            &self.secret,
            &format!("{}\n{path}\n{sorted}", method.to_ascii_uppercase()),
        );
        if !Secret::new(expected).matches(&signature.to_ascii_lowercase()) {
            return Err(unauthorized("unauthorized", "invalid signature"));
        }
        Ok(())
    }
}

/// The Pusher spelling of a hub channel: `:` → `;`, `;` → `=3B`, `=` → `=3D`.
pub fn to_wire(channel: &str) -> String {
    let mut out = String::with_capacity(channel.len() + 4);
    for c in channel.chars() {
        match c {
            ':' => out.push(';'),
            ';' => out.push_str("=3B"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// The hub channel a Pusher channel name stands for; `None` when it is not a valid spelling.
pub fn from_wire(wire: &str) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(c) = rest.chars().next() {
        match c {
            ';' => {
                out.push(':');
                rest = &rest[1..];
            }
            '=' => {
                let code = rest.get(1..3)?;
                out.push(match code.to_ascii_uppercase().as_str() {
                    "3B" => ';',
                    "3D" => '=',
                    _ => return None,
                });
                rest = &rest[3..];
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    crate::model::check_channel("channel", &out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hub_channel_has_one_spelling_and_back() {
        for c in [
            "agent:7f3c",
            "project:acme.web",
            "private-team",
            "presence-room:1",
            "a;b=c:d",
            "=;:",
            "global",
        ] {
            let w = to_wire(c);
            assert!(!w.contains(':'), "{w}");
            // non-empty: every name in the list is at least one character, and so is its spelling
            assert!(
                w.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-=@,.;".contains(ch)),
                "{w} is outside Pusher's grammar"
            );
            assert_eq!(from_wire(&w).as_deref(), Some(c), "{c} → {w}");
        }
        assert_eq!(to_wire("agent:1"), "agent;1");
        assert_eq!(from_wire("a=3Bb").as_deref(), Some("a;b"));
        assert_eq!(from_wire("a=zz"), None);
        assert_eq!(from_wire("a="), None);
        assert_eq!(from_wire(""), None);
    }

    #[test]
    fn signatures_match_pushers_published_examples() {
        // From Pusher's channel authentication docs (key 278d425bdf160c739803, secret 7ad3773142a6692b25b8).
        let app = PusherApp::new(
            "3",
            "278d425bdf160c739803",
            Secret::new("7ad3773142a6692b25b8"),
        );
        assert_eq!(
            app.channel_auth("1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert!(app.verify_channel_auth(
            "1234.1234",
            "private-foobar",
            None,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        ));
        assert!(!app.verify_channel_auth(
            "1234.1235",
            "private-foobar",
            None,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        ));
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        assert_eq!(
            app.channel_auth("1234.1234", "presence-foobar", Some(data)),
            "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
    }

    #[test]
    fn signed_requests_are_checked_in_every_part() {
        // Pusher's HTTP API reference example: POST /apps/3/events at 1353088179.
        let app = PusherApp::new(
            "3",
            "278d425bdf160c739803",
            Secret::new("7ad3773142a6692b25b8"),
        );
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let md5 = hex::encode(Md5::digest(body));
        assert_eq!(md5, "ec365a775a4cd0599faeb73354201b6f");
        let q = |sig: &str, ts: &str| {
            vec![
                ("auth_key".to_owned(), "278d425bdf160c739803".to_owned()),
                ("auth_timestamp".to_owned(), ts.to_owned()),
                ("auth_version".to_owned(), "1.0".to_owned()),
                ("body_md5".to_owned(), md5.clone()),
                ("auth_signature".to_owned(), sig.to_owned()),
            ]
        };
        let sig = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
        let now = 1_353_088_179;
        app.verify_request("POST", "/apps/3/events", &q(sig, "1353088179"), body, now)
            .unwrap();
        let bad = app
            .verify_request(
                "POST",
                "/apps/3/events",
                &q(sig, "1353088179"),
                body,
                now + 601,
            )
            .unwrap_err();
        assert_eq!(bad.code(), "stale_request");
        assert!(
            app.verify_request(
                "POST",
                "/apps/3/events",
                &q(&sig.replace('d', "e"), "1353088179"),
                body,
                now
            )
            .is_err()
        );
        assert!(
            app.verify_request("POST", "/apps/3/events", &q(sig, "1353088179"), b"{}", now)
                .is_err(),
            "a changed body fails body_md5"
        );
        assert!(
            app.verify_request("GET", "/apps/3/events", &q(sig, "1353088179"), body, now)
                .is_err()
        );
    }
}
