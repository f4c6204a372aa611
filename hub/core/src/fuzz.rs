//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) and for the test that replays their corpora
//! (`tests/fuzz_corpus.rs`). Each takes the fuzzer's bytes, runs the real parser, and panics only when an
//! invariant the rest of the hub relies on does not hold. Not an API: hidden from the docs.

use serde_json::{Map, Value};

use crate::auth::{Auth, Secret};
use crate::error::ErrorKind;
use crate::model::channel::check_channel;
use crate::model::{Agent, AgentPatch, Pattern};
use crate::pusher::{from_wire, to_wire};

/// Splits the fuzzer's bytes at the first NUL: two inputs from one.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Channel names and subscription patterns, and their Pusher spelling. `PATTERN\0CHANNEL`.
///
/// Invariants: a pattern prints as it parses; a pattern covers the exact pattern of a channel exactly when it
/// matches that channel; covering is transitive through a match; a valid channel survives the trip through
/// its Pusher spelling, and no other wire name decodes to an invalid channel that passes the check.
pub fn channel(data: &[u8]) {
    let (a, b) = split(data);
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return;
    };
    let pattern = Pattern::parse(a);
    if let Ok(p) = &pattern {
        let again = Pattern::parse(&p.to_string()).expect("a pattern's display parses");
        assert_eq!(&again, p, "a pattern prints as it parses");
        assert!(p.covers(p), "a pattern covers itself");
    }
    if check_channel("channel", b).is_ok() {
        let exact = Pattern::parse(b).expect("a valid channel is a pattern");
        assert!(exact.matches(b), "a channel's own pattern matches it");
        if let Ok(p) = &pattern {
            assert_eq!(
                p.matches(b),
                p.covers(&exact),
                "covering a channel's pattern is matching the channel"
            );
        }
        let wire = to_wire(b);
        assert_eq!(
            from_wire(&wire).as_deref(),
            Some(b),
            "a channel survives its Pusher spelling"
        );
    }
    if let Some(hub) = from_wire(b) {
        // Decoding then encoding may normalise `=3b` to `=3B`, never change the channel.
        assert_eq!(from_wire(&to_wire(&hub)).as_deref(), Some(hub.as_str()));
    }
}

fn agent() -> Agent {
    let mut config = Map::new();
    config.insert("temperature".into(), Value::from(0.2));
    config.insert(
        "tools".into(),
        serde_json::json!({"search": true, "shell": {"allow": ["ls"]}}),
    );
    Agent {
        id: "00000000-0000-7000-8000-000000000000".into(),
        name: "fuzz".into(),
        description: "an agent to patch".into(),
        model: Some("claude".into()),
        status: "idle".into(),
        config,
        tags: vec!["a".into()],
        version: 1,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

/// A JSON merge-patch (RFC 7396) of an agent, as `PATCH /api/agents/{id}` and `update_agent` take it.
///
/// Invariants: a refused patch names its field as `invalid`; an accepted one is idempotent (applying it again
/// changes nothing); a `config` key patched to `null` is gone and one patched to a scalar or array holds it.
pub fn merge_patch(data: &[u8]) {
    let Ok(patch) = serde_json::from_slice::<AgentPatch>(data) else {
        return;
    };
    let mut once = agent();
    match patch.clone().apply(&mut once) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Invalid, "a refused patch is invalid"),
        Ok(_) => {
            let mut twice = once.clone();
            let changed = patch
                .clone()
                .apply(&mut twice)
                .expect("a patch that applied once applies again");
            assert!(
                changed.is_empty(),
                "a merge-patch is idempotent: {changed:?}"
            );
            assert_eq!(once.config, twice.config);
            if let Some(Some(p)) = &patch.config {
                for (k, v) in p {
                    match v {
                        Value::Null => assert!(!once.config.contains_key(k), "null removes {k}"),
                        Value::Object(_) => assert!(once.config[k].is_object()),
                        v => assert_eq!(&once.config[k], v, "a scalar replaces {k}"),
                    }
                }
            }
        }
    }
}

/// The hub token every JWT is signed with, here.
const JWT_KEY: &str = "fuzz-hub-token-0123456789abcdef";

/// A credential as a client presents it. The first byte chooses: a raw credential (token or JWT as sent), or
/// JWT claims (the rest, as the JSON payload) signed with the hub token, so the claims parser is reached.
///
/// Invariants: a refusal is `unauthorized`, never an internal error; an accepted JWT's rules answer every
/// pattern without panicking, and it always may read `global`.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let auth = Auth::new(Secret::new(JWT_KEY), true);
    let cred = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        signed_jwt(rest)
    };
    match auth.authenticate(Some(&cred), false) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}"),
        Ok(p) => {
            assert!(p.sees("global"), "every caller reads global");
            for s in ["*", "global", "agent:*", "private-x", "user:*", "agent:1"] {
                let pat = Pattern::parse(s).expect("a fixed pattern");
                let _ = p.may_subscribe(&pat);
                let _ = p.may_publish(&pat);
            }
            let _ = p.scope();
        }
    }
}

/// `header.payload.signature`, HS256 with [`JWT_KEY`], over `payload` as given.
fn signed_jwt(payload: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(payload)
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(JWT_KEY.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(head.as_bytes());
    format!("{head}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// `sha256=<hex>` of `body` under `secret`: a GitHub delivery's signature, so a target reaches the parser.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The query parameters of a signed Pusher HTTP API request (`extra`, then `auth_key`, `auth_timestamp`,
/// `auth_version`, `body_md5` and `auth_signature`), as the `pusher` server SDKs sign them, so a target reaches
/// the body parser. Values are unencoded.
pub fn pusher_signed_query(
    app: &crate::PusherApp,
    method: &str,
    path: &str,
    body: &[u8],
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    use md5::Digest as _;
    let mut params: Vec<(String, String)> = extra.to_vec();
    params.push(("auth_key".into(), app.key().to_owned()));
    params.push((
        "auth_timestamp".into(),
        chrono::Utc::now().timestamp().to_string(),
    ));
    params.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        params.push(("body_md5".into(), hex::encode(md5::Md5::digest(body))));
    }
    let mut sorted: Vec<(String, &str)> = params
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    sorted.sort();
    let canonical = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let signature = crate::pusher::hmac_hex(
        app.secret(),
        &format!("{}\n{path}\n{canonical}", method.to_ascii_uppercase()),
    );
    params.push(("auth_signature".into(), signature));
    params
}
