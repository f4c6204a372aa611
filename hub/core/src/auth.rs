//! Who the caller is, and what each kind of caller may do (SPEC §10), once for every transport: the hub token,
//! HS256 JWTs with `channels`/`publish` claims, constant-time secret comparison, and the rules themselves.
//!
//! The rules are crate-private on purpose: transports never ask them. They turn credentials into a [`Principal`]
//! through [`Auth`] and hand it to [`Hub::caller`](crate::Hub::caller); every operation checks it there.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::model::{Pattern, Reach, Scope, is_private};

/// A secret string. Compared in constant time; its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the few places that must hand it on (signing keys, the token file, the UI).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time equality.
    pub fn matches(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads `<dir>/token` if it exists (client commands and the desktop app use this; only the hub creates it).
pub fn read_token(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("token"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Reads `<dir>/token`, or creates it with a random 256-bit hex token and mode 0600.
///
/// # Errors
/// `Internal` if the file cannot be read or written.
pub fn load_or_create_token(dir: &Path) -> Result<Secret> {
    let path = dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(Secret(s.trim().to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::internal(format_args!(
                "reading {}: {e}",
                path.display()
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format_args!("creating {}: {e}", dir.display())))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    write_private(&path, &token)
        .map_err(|e| Error::internal(format_args!("writing {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "created hub token");
    Ok(Secret(token))
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// The claims Switchboard reads from a JWT. Absent `channels`/`publish` mean "no restriction".
#[derive(Debug, Clone, Default, Deserialize)]
struct Claims {
    sub: Option<String>,
    channels: Option<Vec<String>>,
    publish: Option<Vec<String>>,
}

/// What a JWT allows, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtClaims {
    /// The user; the connection also joins `user:<sub>`.
    pub sub: Option<String>,
    /// Patterns this client may subscribe to and read; `None` means no restriction.
    pub channels: Option<Vec<Pattern>>,
    /// Patterns this client may publish to; `None` means no restriction.
    pub publish: Option<Vec<Pattern>>,
}

/// Who is calling. Decided once per request or connection, by [`Auth::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials: allowed only when the hub does not require a token. Everything but `private-`/`presence-`
    /// channels and the hub token.
    Anonymous,
    /// Full access: the caller presented the hub token, or is the hub's own window on a hub that does not
    /// require a token.
    Owner,
    /// A JWT signed with the hub token, limited by its claims.
    Jwt(Arc<JwtClaims>),
}

/// The channel every connection joins.
const GLOBAL: &str = "global";

/// Does some pattern of `list` (or the absence of a list) cover `p`?
fn covered(list: Option<&[Pattern]>, p: &Pattern) -> bool {
    list.is_none_or(|l| l.iter().any(|c| c.covers(p)))
}

impl Principal {
    /// The `sub` of a JWT.
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::Jwt(c) => c.sub.as_deref(),
            _ => None,
        }
    }

    /// The channels every connection of this caller is in (SPEC §4): `global`, and `user:<sub>` for a JWT that
    /// names a user. Every caller may read them, whatever its claims say.
    pub(crate) fn joins(&self) -> Vec<Pattern> {
        let mut v = vec![Pattern::Exact(GLOBAL.into())];
        if let Some(p) = self
            .user()
            .and_then(|u| Pattern::parse(&format!("user:{u}")).ok())
        {
            v.push(p);
        }
        v
    }

    fn joined(&self, p: &Pattern) -> bool {
        match p {
            Pattern::Exact(c) => {
                c == GLOBAL
                    || self
                        .user()
                        .is_some_and(|u| c.strip_prefix("user:") == Some(u))
            }
            Pattern::Prefix(_) => false,
        }
    }

    /// May this caller subscribe to (and read) `p`? On success, whether the subscription includes the
    /// `private-`/`presence-` channels it matches.
    ///
    /// # Errors
    /// `Forbidden` naming the pattern.
    pub(crate) fn may_subscribe(&self, p: &Pattern) -> Result<bool> {
        let allowed = match self {
            // `private-*` too: a pattern that could only ever match what the caller may not see is refused.
            Principal::Anonymous => !is_private(p.stem()),
            Principal::Owner => true,
            Principal::Jwt(c) => covered(c.channels.as_deref(), p) || self.joined(p),
        };
        if !allowed {
            return Err(Error::forbidden(format!("not allowed to subscribe to {p}")));
        }
        Ok(match self {
            Principal::Anonymous => false,
            Principal::Owner => true,
            // A JWT sees private channels only through a pattern that is itself private, and covered by its claim:
            // `*` on an unrestricted JWT does not reach `private-team`, `private-team` does.
            Principal::Jwt(_) => is_private(p.stem()),
        })
    }

    /// May this caller see events on `channel`?
    pub(crate) fn sees(&self, channel: &str) -> bool {
        self.may_subscribe(&Pattern::Exact(channel.to_owned()))
            .is_ok()
    }

    /// Everything this caller may read: `*` for the owner and anonymous callers (private channels for the owner
    /// only), the `channels` claim of a JWT.
    pub(crate) fn scope(&self) -> Scope {
        match self {
            Principal::Anonymous => Scope::one(Pattern::all(), false),
            Principal::Owner => Scope::one(Pattern::all(), true),
            Principal::Jwt(c) => match &c.channels {
                None => Scope::one(Pattern::all(), false),
                Some(list) => Scope(
                    list.iter()
                        .cloned()
                        .chain(self.joins())
                        .map(|pattern| Reach {
                            private_ok: is_private(pattern.stem()),
                            pattern,
                        })
                        .collect(),
                ),
            },
        }
    }

    /// May this caller publish on every channel `p` matches? Changing an agent is publishing on its channel:
    /// `agent:*` to create one, `agent:<id>` to change or delete it.
    ///
    /// # Errors
    /// `Forbidden` naming the pattern.
    pub(crate) fn may_publish(&self, p: &Pattern) -> Result<()> {
        let ok = match self {
            Principal::Anonymous => !is_private(p.stem()),
            Principal::Owner => true,
            Principal::Jwt(c) => covered(c.publish.as_deref(), p),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::forbidden(format!("not allowed to publish to {p}")))
        }
    }

    /// May this caller be handed the hub token (`/api/connect`, `/api/ide/*`)? Only the owner.
    pub(crate) fn may_read_token(&self) -> bool {
        matches!(self, Principal::Owner)
    }
}

/// Authenticates callers against the hub token.
#[derive(Clone)]
pub struct Auth {
    token: Secret,
    require: bool,
    key: jsonwebtoken::DecodingKey,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("require", &self.require)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Checks credentials against `token`; with `require`, every caller needs them.
    pub fn new(token: Secret, require: bool) -> Self {
        let key = jsonwebtoken::DecodingKey::from_secret(token.expose().as_bytes());
        Auth {
            token,
            require,
            key,
        }
    }

    /// The hub token. Handing it on is up to [`Caller::hub_token`](crate::Caller::hub_token).
    pub(crate) fn token(&self) -> &Secret {
        &self.token
    }

    /// Whether every endpoint but `/health` needs credentials.
    pub fn required(&self) -> bool {
        self.require
    }

    /// Turns presented credentials (a bearer value or `?token=`) into a principal. `own_window` says the request
    /// comes from the hub's own window (its own origin, or the desktop app's); without credentials, that makes
    /// it the owner on a hub that does not require a token, and nothing more on one that does.
    ///
    /// # Errors
    /// `Unauthorized` when credentials are missing in token mode, or are wrong in any mode.
    pub fn authenticate(&self, presented: Option<&str>, own_window: bool) -> Result<Principal> {
        let Some(cred) = presented.filter(|s| !s.is_empty()) else {
            return match (self.require, own_window) {
                (true, _) => Err(Error::unauthorized(
                    "this hub requires a token: Authorization: Bearer <token> or ?token=",
                )),
                (false, true) => Ok(Principal::Owner),
                (false, false) => Ok(Principal::Anonymous),
            };
        };
        if self.token.matches(cred) {
            return Ok(Principal::Owner);
        }
        if cred.matches('.').count() == 2 {
            return self.decode_jwt(cred);
        }
        Err(Error::unauthorized("invalid token"))
    }

    fn decode_jwt(&self, cred: &str) -> Result<Principal> {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = true;
        let data = jsonwebtoken::decode::<Claims>(cred, &self.key, &v)
            .map_err(|e| Error::unauthorized(format!("invalid JWT: {e}")))?;
        let parse = |l: Option<Vec<String>>, field: &str| -> Result<Option<Vec<Pattern>>> {
            l.map(|l| {
                l.iter()
                    .map(|s| {
                        Pattern::parse(s).map_err(|_| {
                            Error::unauthorized(format!("invalid JWT: bad {field} claim {s:?}"))
                        })
                    })
                    .collect()
            })
            .transpose()
        };
        let c = data.claims;
        Ok(Principal::Jwt(Arc::new(JwtClaims {
            sub: c.sub,
            channels: parse(c.channels, "channels")?,
            publish: parse(c.publish, "publish")?,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(key: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    fn pat(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn token_modes_and_jwt_claims() {
        let auth = Auth::new(Secret::new("s3cret"), true);
        assert_eq!(
            auth.authenticate(None, false).unwrap_err().code(),
            "unauthorized"
        );
        assert!(
            auth.authenticate(None, true).is_err(),
            "the window needs the token too when the hub requires one"
        );
        assert_eq!(
            auth.authenticate(Some("s3cret"), false).unwrap(),
            Principal::Owner
        );
        assert!(auth.authenticate(Some("s3cres"), false).is_err());
        let p = auth
            .authenticate(
                Some(&jwt(
                    "s3cret",
                    serde_json::json!({"sub": "u1", "channels": ["agent:*", "private-team"], "publish": ["dev"]}),
                )),
                true,
            )
            .unwrap();
        assert_eq!(p.user(), Some("u1"));
        assert_eq!(p.may_subscribe(&pat("agent:1")).ok(), Some(false));
        assert_eq!(p.may_subscribe(&pat("private-team")).ok(), Some(true));
        assert!(p.may_subscribe(&pat("*")).is_err());
        assert!(p.may_publish(&pat("dev")).is_ok() && p.may_publish(&pat("global")).is_err());
        assert!(!p.may_read_token());
        assert!(
            auth.authenticate(Some(&jwt("other", serde_json::json!({"sub": "x"}))), false)
                .is_err()
        );
        let open = Auth::new(Secret::new("t"), false);
        assert_eq!(
            open.authenticate(None, false).unwrap(),
            Principal::Anonymous
        );
        assert_eq!(open.authenticate(None, true).unwrap(), Principal::Owner);
        assert!(format!("{:?}", Secret::new("t")).contains("***"));
    }

    #[test]
    fn anonymous_callers_stay_out_of_private_channels() {
        let a = Principal::Anonymous;
        assert!(a.may_subscribe(&pat("private-x")).is_err());
        assert!(a.may_subscribe(&pat("presence-*")).is_err());
        assert_eq!(a.may_subscribe(&pat("*")).ok(), Some(false));
        assert!(a.may_publish(&pat("private-x")).is_err() && a.may_publish(&pat("x")).is_ok());
        assert!(!a.sees("presence-room") && a.sees("global"));
        assert!(!a.may_read_token() && Principal::Owner.may_read_token());
        assert_eq!(Principal::Owner.scope(), Scope::one(Pattern::all(), true));
        assert_eq!(a.scope(), Scope::one(Pattern::all(), false));
    }
}
