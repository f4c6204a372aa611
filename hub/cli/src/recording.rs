//! `switchboard record` and `switchboard replay`: a session's events as NDJSON envelopes (what
//! `GET /api/events/export` streams), and that file published again into a running hub, keeping the events'
//! relative timing (`--speed 2` twice as fast, `--speed 0` as fast as possible).

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::DateTime;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::HubClient;

/// Writes the logged events on `channel` after `since` (up to now) to `out`, one envelope per line; with
/// `follow`, then live events until `stop` fires. Returns how many it wrote from the log.
///
/// # Errors
/// The hub's refusal (a bad pattern, a channel out of reach), or a write error.
pub async fn record(
    client: &HubClient,
    channel: &str,
    since: u64,
    follow: bool,
    stop: CancellationToken,
) -> Result<u64> {
    let res = client
        .request(reqwest::Method::GET, "/api/events/export")
        .query(&[
            ("channel", channel.to_owned()),
            ("since", since.to_string()),
        ])
        .send()
        .await
        .with_context(|| format!("no hub answers at {}", client.base()))?;
    if !res.status().is_success() {
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        bail!("{status}: {}", v["error"]["message"].as_str().unwrap_or(""));
    }
    let mut out = std::io::stdout().lock();
    let mut body = res.bytes_stream();
    let mut last = since;
    let mut n = 0;
    let mut partial = Vec::new();
    while let Some(chunk) = body.next().await {
        partial.extend_from_slice(&chunk?);
        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                last = v["seq"].as_u64().unwrap_or(last);
            }
            out.write_all(&line)?;
            n += 1;
        }
    }
    out.flush()?;
    drop(out);
    if follow {
        client.tail(channel, Some(last), true, stop).await?;
    }
    Ok(n)
}

/// One event of a recording.
struct Recorded {
    channel: String,
    event: String,
    data: Value,
    /// Milliseconds since the recording's first event.
    at_ms: i64,
}

fn read(path: &Path) -> Result<Vec<Recorded>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    let mut first: Option<i64> = None;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("{}: not JSON", at()))?;
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: no {k:?} (not an event envelope)", at()))
        };
        let ts = DateTime::parse_from_rfc3339(&field("ts")?)
            .with_context(|| format!("{}: ts is not RFC 3339", at()))?
            .timestamp_millis();
        let t0 = *first.get_or_insert(ts);
        out.push(Recorded {
            channel: field("channel")?,
            event: field("event")?,
            data: v["data"].clone(),
            at_ms: (ts - t0).max(0),
        });
    }
    Ok(out)
}

/// Publishes every event of the recording at `path`, in order, each `at_ms / speed` after the start (no waiting
/// with `speed` 0). The hub's own presence events are skipped (it alone publishes those). Returns
/// `{published, skipped, seconds}`.
///
/// # Errors
/// A file that is not a recording (nothing is published), a bad speed, or the hub's refusal of an event (what
/// came before it stays published).
pub async fn replay(client: &HubClient, path: &Path, speed: f64) -> Result<Value> {
    if !(speed >= 0.0 && speed.is_finite()) {
        bail!("--speed must be 0 (as fast as possible) or a positive number, got {speed}");
    }
    let events = read(path)?;
    let start = Instant::now();
    let (mut published, mut skipped) = (0u64, 0u64);
    for (i, e) in events.into_iter().enumerate() {
        if e.event.starts_with("presence.") || e.event.starts_with("pusher") {
            skipped += 1;
            continue;
        }
        if speed > 0.0 {
            let due = start + Duration::from_secs_f64(e.at_ms as f64 / 1000.0 / speed);
            tokio::time::sleep_until(due).await;
        }
        client
            .post(
                "/api/events",
                json!({"channel": e.channel, "event": e.event, "data": e.data}),
            )
            .await
            .with_context(|| format!("event {i} of {}", path.display()))?;
        published += 1;
    }
    Ok(
        json!({"published": published, "skipped": skipped, "seconds": start.elapsed().as_secs_f64()}),
    )
}
