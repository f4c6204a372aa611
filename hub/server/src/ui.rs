//! The window's files (`ui/`), embedded in the binary and served at `/`, so a browser gets the same UI as the
//! desktop app, and the webapp client (`clients/js`, its single-file build) at `/client.js`. They hold no secrets
//! and are served without a token; the page reads `?token=` from its URL.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../../../ui/index.html");
/// The window's ES modules, by path.
const MODULES: &[(&str, &str)] = &[
    ("/app.js", include_str!("../../../ui/app.js")),
    ("/dom.js", include_str!("../../../ui/dom.js")),
    ("/hub.js", include_str!("../../../ui/hub.js")),
    ("/plot.js", include_str!("../../../ui/plot.js")),
    ("/tools.js", include_str!("../../../ui/tools.js")),
];
const STYLE: &str = include_str!("../../../ui/style.css");
/// `clients/js/dist/client.js`, as `npm run build` in `clients/js` makes it (a test checks they are the same).
const CLIENT_JS: &str = include_str!("../../../clients/js/dist/client.js");

/// Paths the guard lets through without credentials.
pub const PUBLIC_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/app.js",
    "/dom.js",
    "/hub.js",
    "/plot.js",
    "/tools.js",
    "/style.css",
    "/client.js",
];

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
    let mut r = Router::new()
        .route("/", get(index))
        .route("/index.html", get(index));
    for &(path, body) in MODULES {
        r = r.route(
            path,
            get(move || async move { file("text/javascript; charset=utf-8", body) }),
        );
    }
    r.route(
        "/style.css",
        get(|| async { file("text/css; charset=utf-8", STYLE) }),
    )
    .route(
        "/client.js",
        get(|| async { file("text/javascript; charset=utf-8", CLIENT_JS) }),
    )
}
