//! The local-first guard (SPEC §10), one middleware in front of every route: the `Host` check against DNS
//! rebinding, the `Origin` allowlist against cross-site use, the optional per-IP REST rate limit, and who the
//! caller is. It decides that once per request (the core's [`Hub::authenticate`](switchboard_core::Hub) from the
//! credentials, and whether the request comes from the hub's own window) and leaves the [`Principal`] on the
//! request; what the caller may do is decided in the core, by the operation. CORS answers only allowed origins.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchboard_core::{Error, ErrorKind, Principal};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Host and Origin rules, built once from the config.
#[derive(Debug, Clone)]
pub struct Policy {
    allow_hosts: Vec<String>,
    allow_origins: Vec<String>,
}

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];
const DESKTOP_ORIGINS: &[&str] = &[
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
];

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

impl Policy {
    /// The rules `cfg` asks for.
    pub fn new(cfg: &ServerConfig) -> Self {
        let lower = |v: &Vec<String>| {
            v.iter()
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect()
        };
        Policy {
            allow_hosts: lower(&cfg.allow_hosts),
            allow_origins: lower(&cfg.allow_origins),
        }
    }

    /// Is this `Host` header one of ours? Loopback names with any port, or a listed host.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let name = strip_port(&host);
        LOOPBACK_HOSTS.contains(&name) || self.allow_hosts.iter().any(|h| h == &host || h == name)
    }

    /// Is this `Origin` allowed? `http(s)://localhost|127.0.0.1|[::1]` on any port, the desktop window, or a
    /// listed origin (`…:*` matches any port).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        if DESKTOP_ORIGINS.contains(&o.as_str()) {
            return true;
        }
        let Some((scheme, rest)) = o.split_once("://") else {
            return false;
        };
        if (scheme == "http" || scheme == "https")
            && !rest.contains('/')
            && LOOPBACK_HOSTS.contains(&strip_port(rest))
        {
            return true;
        }
        self.allow_origins
            .iter()
            .any(|a| match a.strip_suffix(":*") {
                Some(base) => {
                    o == base
                        || (o.starts_with(base)
                            && o[base.len()..].starts_with(':')
                            && o[base.len() + 1..].chars().all(|c| c.is_ascii_digit()))
                }
                None => *a == o,
            })
    }

    /// CORS for the allowed origins.
    pub fn cors(self: &Arc<Self>) -> CorsLayer {
        let p = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |o, _| {
                o.to_str().is_ok_and(|o| p.origin_allowed(o))
            }))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::HeaderName::from_static("last-event-id"),
                header::HeaderName::from_static("mcp-session-id"),
                header::HeaderName::from_static("mcp-protocol-version"),
                header::HeaderName::from_static("mcp-method"),
                header::HeaderName::from_static("mcp-name"),
            ])
            .expose_headers([
                header::ETAG,
                header::RETRY_AFTER,
                header::HeaderName::from_static("mcp-session-id"),
            ])
            .max_age(std::time::Duration::from_secs(600))
    }
}

/// The per-IP REST limiter, present only with `--rate-limit`.
pub type IpLimiter = DefaultKeyedRateLimiter<IpAddr>;

/// A limiter of `per_s` requests per second per IP; `None` for 0.
pub fn ip_limiter(per_s: u32) -> Option<Arc<IpLimiter>> {
    let n = NonZeroU32::new(per_s)?;
    Some(Arc::new(RateLimiter::keyed(Quota::per_second(n))))
}

/// Credentials from `Authorization: Bearer …` or `?token=…`.
pub fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(t.trim());
    }
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// Runs the §10 checks, then the route with the caller's [`Principal`] as a request extension.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match check(&state, &mut req) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::debug!(path = %req.uri().path(), code = e.code(), "request refused");
            ApiError(e).into_response()
        }
    }
}

/// Is the request from the hub's own window: a page the hub served itself (its own origin), or the desktop app's
/// window? Browsers send `Origin` on cross-origin requests, WebSocket upgrades and same-origin writes, and
/// `Sec-Fetch-Site: same-origin` on every same-origin request; neither can be set by a page. A program that is
/// not a browser can set both, but it runs on this machine and, when the hub does not require a token, is
/// trusted anyway.
fn own_window(headers: &HeaderMap) -> bool {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    match header(header::ORIGIN) {
        Some(origin) => {
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            DESKTOP_ORIGINS.contains(&origin.as_str())
                || header(header::HOST)
                    .is_some_and(|h| origin == format!("http://{}", h.to_ascii_lowercase()))
        }
        None => header(header::HeaderName::from_static("sec-fetch-site"))
            .is_some_and(|v| v.eq_ignore_ascii_case("same-origin")),
    }
}

fn check(state: &AppState, req: &mut Request) -> Result<(), Error> {
    let policy = &state.policy;
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !policy.host_allowed(host) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "forbidden_host",
                "Host is not allowed (DNS-rebinding defence); see --allow-host",
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin.to_str().is_ok_and(|o| policy.origin_allowed(o))
    {
        return Err(Error::new(
            ErrorKind::Forbidden,
            "forbidden_origin",
            "Origin is not allowed (cross-site defence); see --allow-origin",
        ));
    }
    let path = req.uri().path();
    let public = path == "/health"
        || req.method() == Method::OPTIONS
        || crate::ui::PUBLIC_PATHS.contains(&path);
    if let Some(limiter) = &state.ip_limiter
        && !public
    {
        let ip = req
            .extensions()
            .get::<ConnectInfo<crate::peer::Peer>>()
            .map(|c| c.0.addr.ip());
        if let Some(ip) = ip
            && limiter.check_key(&ip).is_err()
        {
            return Err(Error::rate_limited());
        }
    }
    // Percent-encoded tokens are not expected: tokens and JWTs are URL-safe.
    let presented = presented_token(headers, req.uri().query());
    // Where the protocol carries credentials of its own, the route decides without the guard's principal:
    // Socket.IO's auth payload, a Pusher connection (which cannot present any: refused on a token hub), the
    // signed Pusher HTTP API, and GitHub's signed deliveries.
    let own_credentials = path.starts_with("/socket.io")
        || path.starts_with("/app/")
        || path.starts_with("/apps/")
        || path == "/api/webhooks/github";
    let principal = match state.hub.authenticate(presented, own_window(headers)) {
        Ok(p) => p,
        Err(_) if public => Principal::Anonymous,
        Err(_) if own_credentials => return Ok(()),
        Err(e) => return Err(e),
    };
    req.extensions_mut().insert(principal);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_origin_rules() {
        let mut cfg = ServerConfig::new("/tmp/x");
        cfg.allow_origins = vec!["https://app.example.com".into(), "http://dev.box:*".into()];
        cfg.allow_hosts = vec!["hub.lan".into()];
        let p = Policy::new(&cfg);
        assert!(
            p.host_allowed("127.0.0.1:4747")
                && p.host_allowed("localhost")
                && p.host_allowed("[::1]:80")
        );
        assert!(
            p.host_allowed("hub.lan:4747")
                && !p.host_allowed("evil.com")
                && !p.host_allowed("localhost.evil.com:4747")
        );
        assert!(
            p.origin_allowed("http://localhost:3000")
                && p.origin_allowed("https://127.0.0.1")
                && p.origin_allowed("tauri://localhost")
        );
        assert!(
            p.origin_allowed("https://app.example.com") && p.origin_allowed("http://dev.box:5173")
        );
        assert!(
            !p.origin_allowed("http://evil.com")
                && !p.origin_allowed("null")
                && !p.origin_allowed("http://localhost.evil.com")
        );
        assert!(!p.origin_allowed("http://dev.box.evil:80"));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_own_window_is_the_hubs_origin_or_the_desktop_app() {
        let host = ("host", "127.0.0.1:4747");
        assert!(own_window(&headers(&[
            host,
            ("origin", "http://127.0.0.1:4747")
        ])));
        assert!(own_window(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(own_window(&headers(&[
            host,
            ("origin", "tauri://localhost")
        ])));
        assert!(!own_window(&headers(&[
            host,
            ("origin", "http://localhost:3000")
        ])));
        assert!(!own_window(&headers(&[
            host,
            ("origin", "http://127.0.0.1:3000")
        ])));
        assert!(!own_window(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!own_window(&headers(&[host])), "curl is not the window");
    }
}
