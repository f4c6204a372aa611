//! Access rules (SPEC §10), once for every transport: the hub token, HS256 JWTs with `channels`/`publish`
//! claims, constant-time secret comparison, and the per-connection publish rate limit.

use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::model::{Pattern, is_private};

/// A secret string. Compared in constant time; its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
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
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
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
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// The claims Switchboard reads from a JWT. Absent `channels`/`publish` mean "no restriction".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    /// The user; the connection also joins `user:<sub>`.
    pub sub: Option<String>,
    /// Patterns this client may subscribe to.
    pub channels: Option<Vec<String>>,
    /// Patterns this client may publish to.
    pub publish: Option<Vec<String>>,
    pub exp: Option<u64>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credentials (allowed unless the hub requires a token).
    Anonymous,
    /// The hub token itself: full access.
    Token,
    /// A JWT signed with the hub token.
    Jwt {
        sub: Option<String>,
        channels: Option<Vec<Pattern>>,
        publish: Option<Vec<Pattern>>,
    },
}

fn covered(list: &Option<Vec<Pattern>>, p: &Pattern) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|c| c.covers(p)))
}

impl Principal {
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::Jwt { sub, .. } => sub.as_deref(),
            _ => None,
        }
    }

    /// May this caller subscribe to `p`?
    ///
    /// # Errors
    /// `Forbidden` naming the pattern.
    pub fn check_subscribe(&self, p: &Pattern) -> Result<()> {
        let ok = match self {
            Principal::Anonymous => !matches!(p, Pattern::Exact(c) if is_private(c)),
            Principal::Token => true,
            Principal::Jwt { channels, .. } => covered(channels, p),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::forbidden(format!("not allowed to subscribe to {p}")))
        }
    }

    /// May a subscription to `p` by this caller see `private-`/`presence-` channels?
    pub fn private_ok(&self, p: &Pattern) -> bool {
        match self {
            Principal::Anonymous => false,
            Principal::Token => true,
            // Only when the claim names private channels explicitly, or the pattern is itself private.
            Principal::Jwt { channels, .. } => match p {
                Pattern::Exact(c) => is_private(c) && covered(channels, p),
                Pattern::Prefix(x) => is_private(x) && covered(channels, p),
            },
        }
    }

    /// May this caller create, change or delete agents? A JWT needs a `publish` claim covering `agent:*`.
    ///
    /// # Errors
    /// `Forbidden`.
    pub fn check_agents(&self) -> Result<()> {
        match self {
            Principal::Jwt { publish, .. }
                if !covered(publish, &Pattern::Prefix("agent:".into())) =>
            {
                Err(Error::forbidden(
                    "not allowed to change agents (needs publish on agent:*)",
                ))
            }
            _ => Ok(()),
        }
    }

    /// May this caller publish on `channel`?
    ///
    /// # Errors
    /// `Forbidden` naming the channel.
    pub fn check_publish(&self, channel: &str) -> Result<()> {
        let p = Pattern::Exact(channel.to_owned());
        let ok = match self {
            Principal::Anonymous => !is_private(channel),
            Principal::Token => true,
            Principal::Jwt { publish, .. } => covered(publish, &p),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "not allowed to publish to {channel}"
            )))
        }
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
    pub fn new(token: Secret, require: bool) -> Self {
        let key = jsonwebtoken::DecodingKey::from_secret(token.expose().as_bytes());
        Auth {
            token,
            require,
            key,
        }
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// Whether every endpoint but `/health` needs credentials.
    pub fn required(&self) -> bool {
        self.require
    }

    /// Turns presented credentials (a bearer value or `?token=`) into a principal.
    ///
    /// # Errors
    /// `Unauthorized` when credentials are missing in token mode, or are wrong in any mode.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Principal> {
        let Some(cred) = presented.filter(|s| !s.is_empty()) else {
            return if self.require {
                Err(Error::unauthorized(
                    "this hub requires a token: Authorization: Bearer <token> or ?token=",
                ))
            } else {
                Ok(Principal::Anonymous)
            };
        };
        if self.token.matches(cred) {
            return Ok(Principal::Token);
        }
        if cred.matches('.').count() == 2 {
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
            return Ok(Principal::Jwt {
                sub: c.sub,
                channels: parse(c.channels, "channels")?,
                publish: parse(c.publish, "publish")?,
            });
        }
        Err(Error::unauthorized("invalid token"))
    }
}

/// The per-connection limiter for publishes from socket clients: 100/s, burst 200 (SPEC §10).
pub fn socket_publish_limiter() -> DefaultDirectRateLimiter {
    let per_s = NonZeroU32::new(100).expect("nonzero");
    let burst = NonZeroU32::new(200).expect("nonzero");
    RateLimiter::direct(Quota::per_second(per_s).allow_burst(burst))
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

    #[test]
    fn token_modes_and_jwt_claims() {
        let auth = Auth::new(Secret::new("s3cret"), true);
        assert_eq!(auth.authenticate(None).unwrap_err().code(), "unauthorized");
        assert!(matches!(
            auth.authenticate(Some("s3cret")).unwrap(),
            Principal::Token
        ));
        assert!(auth.authenticate(Some("s3cres")).is_err());
        let p = auth
            .authenticate(Some(&jwt(
                "s3cret",
                serde_json::json!({"sub": "u1", "channels": ["agent:*"], "publish": ["dev"]}),
            )))
            .unwrap();
        assert_eq!(p.user(), Some("u1"));
        assert!(
            p.check_subscribe(&Pattern::parse("agent:1").unwrap())
                .is_ok()
        );
        assert!(p.check_subscribe(&Pattern::parse("*").unwrap()).is_err());
        assert!(p.check_publish("dev").is_ok() && p.check_publish("global").is_err());
        assert!(
            auth.authenticate(Some(&jwt("other", serde_json::json!({"sub": "x"}))))
                .is_err()
        );
        let open = Auth::new(Secret::new("t"), false);
        assert!(matches!(
            open.authenticate(None).unwrap(),
            Principal::Anonymous
        ));
        assert!(format!("{:?}", Secret::new("t")).contains("***"));
    }
}
