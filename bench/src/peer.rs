//! The servers under test and the seam each one plugs into: how it starts, where its WebSocket is, what a new
//! connection says and waits for before it is subscribed, how it keeps the connection alive, and how a message is
//! published. Three wire protocols, each with Switchboard and the peers that speak it:
//!
//! - Switchboard's own protocol (`switchboard`), beside plain broadcast hubs (`node-ws`, `fastapi`: every
//!   connection gets every message; see `bench/peers/README.md`);
//! - Socket.IO 4 over Engine.IO v4, WebSocket transport only (`switchboard-socketio`, `node-socketio`);
//! - the Pusher protocol 7 with its signed HTTP API (`switchboard-pusher`, `sockudo`).
//!
//! A new protocol is one more [`Proto`] with its own [`Kind::ws_path`], [`Kind::handshake`],
//! [`Kind::keepalive`] and [`Kind::publish`] answers; the load tool's WebSocket reader stays the same.

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

pub(crate) use crate::server::{Paths, Server, Usage, peer_file};

/// One server the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Switchboard,
    NodeWs,
    FastApi,
    /// The hub, subscribers on its Socket.IO endpoint, published through its REST API.
    SwitchboardSocketio,
    NodeSocketio,
    /// The hub, subscribers on its Pusher endpoint, published through its Pusher HTTP API.
    SwitchboardPusher,
    Sockudo,
}

/// The wire protocol a subscriber speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// Switchboard's own: channels in the query string, an `ack` frame once subscribed.
    Native,
    /// The plain broadcast hubs: nothing to say, every message to every connection.
    Plain,
    SocketIo,
    Pusher,
}

/// The Pusher app Switchboard (with `--pusher-*`) and Sockudo are started with.
pub(crate) const PUSHER_APP_ID: &str = "bench";
pub(crate) const PUSHER_KEY: &str = "benchkey";
pub(crate) const PUSHER_SECRET: &str = "benchsecret";

/// One step of a subscriber's handshake: wait for a text frame `done` accepts, then send `then` (a text frame).
pub(crate) struct Step {
    pub done: fn(&[u8]) -> bool,
    pub then: Option<Vec<u8>>,
}

impl Kind {
    /// Every kind, in the default order: each protocol's Switchboard row beside its peers'.
    pub(crate) const ALL: [Kind; 7] = [
        Kind::Switchboard,
        Kind::NodeWs,
        Kind::FastApi,
        Kind::SwitchboardSocketio,
        Kind::NodeSocketio,
        Kind::SwitchboardPusher,
        Kind::Sockudo,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Switchboard => "switchboard",
            Kind::NodeWs => "node-ws",
            Kind::FastApi => "fastapi",
            Kind::SwitchboardSocketio => "switchboard-socketio",
            Kind::NodeSocketio => "node-socketio",
            Kind::SwitchboardPusher => "switchboard-pusher",
            Kind::Sockudo => "sockudo",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .with_context(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown peer {s:?} (known: {})", known.join(", "))
            })
    }

    pub(crate) fn proto(self) -> Proto {
        match self {
            Kind::Switchboard => Proto::Native,
            Kind::NodeWs | Kind::FastApi => Proto::Plain,
            Kind::SwitchboardSocketio | Kind::NodeSocketio => Proto::SocketIo,
            Kind::SwitchboardPusher | Kind::Sockudo => Proto::Pusher,
        }
    }

    /// Whether this is the Switchboard hub (under any of its protocols).
    pub(crate) fn is_switchboard(self) -> bool {
        matches!(
            self,
            Kind::Switchboard | Kind::SwitchboardSocketio | Kind::SwitchboardPusher
        )
    }

    /// Fails when what this kind runs is not installed (checked before a run starts, not an hour into it).
    pub(crate) fn check_installed(self, paths: &Paths) -> Result<()> {
        match self {
            Kind::Switchboard | Kind::SwitchboardSocketio | Kind::SwitchboardPusher => Ok(()),
            Kind::NodeWs | Kind::NodeSocketio => {
                peer_file(&paths.root, &format!("{}/server.js", self.name()))?;
                peer_file(&paths.root, &format!("{}/node_modules", self.name())).map(drop)
            }
            Kind::FastApi => peer_file(&paths.root, "fastapi/.venv/bin/python").map(drop),
            Kind::Sockudo if paths.sockudo.exists() => Ok(()),
            Kind::Sockudo => bail!(
                "{} is missing: run bench/peers/install.sh (or pass --sockudo)",
                paths.sockudo.display()
            ),
        }
    }

    /// The path that answers 200 once the server is up.
    pub(crate) fn health_path(self) -> String {
        match self {
            // Sockudo's health check, for the one app it serves (it also checks the app exists).
            Kind::Sockudo => format!("/up/{PUSHER_APP_ID}"),
            _ => "/health".into(),
        }
    }

    /// The WebSocket path a subscriber opens to receive `channel`.
    pub(crate) fn ws_path(self, channel: &str) -> String {
        match self.proto() {
            Proto::Native => format!("/ws?channels={channel}"),
            Proto::Plain => "/ws".into(),
            Proto::SocketIo => "/socket.io/?EIO=4&transport=websocket".into(),
            Proto::Pusher => format!("/app/{PUSHER_KEY}?protocol=7&client=js&version=8.4.0"),
        }
    }

    /// What a new connection waits for and says, in order, until it is subscribed to `channel`. Empty when the
    /// upgrade is enough.
    pub(crate) fn handshake(self, channel: &str) -> Vec<Step> {
        match self.proto() {
            Proto::Native => vec![Step {
                done: |t| memchr::memmem::find(t, b"\"type\":\"ack\"").is_some(),
                then: None,
            }],
            Proto::Plain => Vec::new(),
            // Engine.IO open `0{...}`; connect the main namespace (`40`), its answer `40{"sid":...}`; emit
            // `subscribe` with ack id 1; the ack `431[{"status":"success",...}]`.
            Proto::SocketIo => vec![
                Step {
                    done: |t| t.starts_with(b"0{"),
                    then: Some(b"40".to_vec()),
                },
                Step {
                    done: |t| t.starts_with(b"40"),
                    then: Some(format!(r#"421["subscribe",{{"room":"{channel}"}}]"#).into_bytes()),
                },
                Step {
                    done: |t| {
                        t.starts_with(b"431[") && memchr::memmem::find(t, b"\"success\"").is_some()
                    },
                    then: None,
                },
            ],
            Proto::Pusher => vec![
                Step {
                    done: |t| memchr::memmem::find(t, b"pusher:connection_established").is_some(),
                    then: Some(
                        format!(
                            r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#
                        )
                        .into_bytes(),
                    ),
                },
                Step {
                    done: |t| {
                        memchr::memmem::find(t, b"pusher_internal:subscription_succeeded").is_some()
                    },
                    then: None,
                },
            ],
        }
    }

    /// Whether a text frame received during the handshake says the server refused it.
    pub(crate) fn refused(self, t: &[u8]) -> bool {
        match self.proto() {
            // CONNECT_ERROR, or an ack that is not a success.
            Proto::SocketIo => t.starts_with(b"44") || t.starts_with(b"43"),
            Proto::Pusher => {
                memchr::memmem::find(t, b"pusher:error").is_some()
                    || memchr::memmem::find(t, b"subscription_error").is_some()
            }
            Proto::Native | Proto::Plain => false,
        }
    }

    /// The text frame that answers a protocol-level ping, if `t` is one. (WebSocket pings are answered by the
    /// reader for every kind.)
    pub(crate) fn keepalive(self, t: &[u8]) -> Option<&'static [u8]> {
        match self.proto() {
            // Engine.IO v4: the server pings with `2`, the client answers `3` within the ping timeout.
            Proto::SocketIo => (t == b"2").then_some(b"3"),
            Proto::Pusher => memchr::memmem::find(t, b"\"pusher:ping\"")
                .is_some()
                .then_some(br#"{"event":"pusher:pong","data":"{}"}"#),
            Proto::Native | Proto::Plain => None,
        }
    }

    /// `(method, path, body)` that publishes a message carrying `stamp` to every subscriber of `bench`.
    pub(crate) fn publish(self, stamp: u64) -> (&'static str, String, Vec<u8>) {
        match self {
            Kind::Switchboard | Kind::SwitchboardSocketio => (
                "POST",
                "/api/events".into(),
                format!(r#"{{"channel":"bench","event":"tick","data":{{"m":"BT{stamp}"}}}}"#)
                    .into_bytes(),
            ),
            Kind::NodeWs | Kind::FastApi => (
                "POST",
                "/publish".into(),
                format!(r#"{{"m":"BT{stamp}"}}"#).into_bytes(),
            ),
            Kind::NodeSocketio => (
                "POST",
                "/publish".into(),
                format!(r#"{{"room":"bench","event":"tick","data":{{"m":"BT{stamp}"}}}}"#)
                    .into_bytes(),
            ),
            Kind::SwitchboardPusher | Kind::Sockudo => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let body = format!(
                    r#"{{"name":"tick","channels":["bench"],"data":"{{\"m\":\"BT{stamp}\"}}"}}"#
                );
                let path = pusher_signed(
                    PUSHER_APP_ID,
                    PUSHER_KEY,
                    PUSHER_SECRET,
                    now,
                    body.as_bytes(),
                );
                ("POST", path, body.into_bytes())
            }
        }
    }
}

/// The path and query of a Pusher HTTP API `POST /apps/{app_id}/events` carrying `body`, signed with `secret`:
/// the signature is HMAC-SHA256 over `POST\n<path>\n<query without the signature, keys sorted>`.
pub(crate) fn pusher_signed(
    app_id: &str,
    key: &str,
    secret: &str,
    unix_s: u64,
    body: &[u8],
) -> String {
    let path = format!("/apps/{app_id}/events");
    let query = format!(
        "auth_key={key}&auth_timestamp={unix_s}&auth_version=1.0&body_md5={}",
        hex::encode(Md5::digest(body))
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("POST\n{path}\n{query}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("{path}?{query}&auth_signature={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn pusher_signature_matches_the_documented_example() {
        // The worked example of the Pusher HTTP API authentication docs.
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let path = pusher_signed(
            "3",
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            1_353_088_179,
            body,
        );
        assert_eq!(
            path,
            "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn every_kind_parses_and_publishes_a_stamp() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.name()).unwrap(), kind);
            let (_, _, body) = kind.publish(42);
            assert_eq!(wire::stamp(&body), Some(42), "{}", kind.name());
        }
        assert!(Kind::parse("nope").is_err());
    }

    #[test]
    fn handshakes_recognise_their_frames() {
        let sio = Kind::NodeSocketio.handshake("bench");
        assert!((sio[0].done)(br#"0{"sid":"x","pingInterval":25000}"#));
        assert!((sio[1].done)(br#"40{"sid":"y"}"#));
        assert_eq!(
            sio[1].then.as_deref(),
            Some(&br#"421["subscribe",{"room":"bench"}]"#[..])
        );
        assert!((sio[2].done)(
            br#"431[{"status":"success","room":"bench"}]"#
        ));
        assert!(Kind::NodeSocketio.refused(br#"431[{"status":"error"}]"#));
        assert_eq!(Kind::NodeSocketio.keepalive(b"2"), Some(&b"3"[..]));
        assert_eq!(Kind::NodeSocketio.keepalive(br#"42["tick",{}]"#), None);

        let pusher = Kind::Sockudo.handshake("bench");
        assert!((pusher[0].done)(
            br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\"}"}"#
        ));
        assert!((pusher[1].done)(
            br#"{"event":"pusher_internal:subscription_succeeded","channel":"bench","data":"{}"}"#
        ));
        assert!(
            Kind::Sockudo
                .keepalive(br#"{"event":"pusher:ping","data":{}}"#)
                .is_some()
        );
        assert_eq!(
            wire::stamp(br#"{"event":"tick","channel":"bench","data":"{\"m\":\"BT7\"}"}"#),
            Some(7)
        );
    }
}
