//! `GET /metrics`: Prometheus text exposition of the hub's counters.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// `GET /metrics`: counts only, no channel or client names, so it needs no caller.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let s = state.hub.stats();
    let by_transport = state.hub.connections_by_transport();
    let mut out = String::with_capacity(1024);
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let conns = if by_transport.is_empty() {
        vec![(String::new(), 0.0)]
    } else {
        by_transport
            .iter()
            .map(|(t, n)| (format!("{{transport=\"{t}\"}}"), *n as f64))
            .collect()
    };
    metric(
        "switchboard_connections",
        "gauge",
        "Open connections (WebSocket, SSE, MCP), by transport.",
        conns,
    );
    metric(
        "switchboard_connections_total",
        "counter",
        "Connections accepted since start.",
        vec![(String::new(), s.connections_total as f64)],
    );
    metric(
        "switchboard_deliveries_total",
        "counter",
        "Events queued to subscribers.",
        vec![(String::new(), s.deliveries as f64)],
    );
    metric(
        "switchboard_slow_consumers_total",
        "counter",
        "Connections closed with 4008.",
        vec![(String::new(), s.slow_consumers as f64)],
    );
    metric(
        "switchboard_last_seq",
        "gauge",
        "Sequence number of the newest event.",
        vec![(String::new(), s.last_seq as f64)],
    );
    metric(
        "switchboard_http_requests_total",
        "counter",
        "HTTP requests served.",
        vec![(
            String::new(),
            state.http_requests.load(Ordering::Relaxed) as f64,
        )],
    );
    metric(
        "switchboard_uptime_seconds",
        "gauge",
        "Seconds since the hub started.",
        vec![(String::new(), state.hub.uptime().as_secs_f64())],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
