//! The window's files (`ui/`), embedded in the binary and served at `/`, so a browser gets the same UI as the
//! desktop app, and the webapp client (`clients/js`, its single-file build) at `/client.js`. They hold no secrets
//! and are served without a token; the page reads `?token=` from its URL.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../../ui/index.html");
const APP_JS: &str = include_str!("../../../ui/app.js");
const STYLE: &str = include_str!("../../../ui/style.css");
/// `clients/js/dist/client.js`, as `npm run build` in `clients/js` makes it (a test checks they are the same).
const CLIENT_JS: &str = include_str!("../../../clients/js/dist/client.js");

/// Paths the guard lets through without credentials.
pub const PUBLIC_PATHS: &[&str] = &["/", "/index.html", "/app.js", "/style.css", "/client.js"];

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        body,
    )
}

/// The window's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let index = || async { file("text/html; charset=utf-8", INDEX) };
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route(
            "/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/client.js",
            get(|| async { file("text/javascript; charset=utf-8", CLIENT_JS) }),
        )
}
