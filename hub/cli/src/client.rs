//! The shell clients: `tail`, `publish` and `agents …`, talking to a running hub over its public REST and
//! WebSocket API.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_core::auth::read_token;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

/// A hub's URL and, when known, its token.
pub struct HubClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// How often a mutation is sent before its failure is reported: each try with the same `Idempotency-Key`, so the
/// hub does it once however many of them reach it.
const TRIES: u32 = 5;

/// Whether a try's outcome is worth another: the hub was not reached, answered nothing, was busy with the same key,
/// or could not reach its store. Anything else (2xx, a refusal) is the answer.
fn retryable(status: Option<reqwest::StatusCode>) -> bool {
    status.is_none_or(|s| {
        s == reqwest::StatusCode::CONFLICT
            || s == reqwest::StatusCode::BAD_GATEWAY
            || s == reqwest::StatusCode::SERVICE_UNAVAILABLE
            || s == reqwest::StatusCode::GATEWAY_TIMEOUT
    })
}

impl HubClient {
    /// `--hub` / `SWITCHBOARD_URL`, else the file's `hub`, else the hub running on `data_dir` (its lock file says
    /// where), else `http://127.0.0.1:4747`; the token from `SWITCHBOARD_TOKEN`, else `<data dir>/token` if
    /// readable.
    pub fn new(hub: Option<String>, token: Option<String>, data_dir: &Path) -> Self {
        let base = hub
            .or_else(|| switchboard_server::lock::running_hub(data_dir).and_then(|h| h.url))
            .unwrap_or_else(|| crate::DEFAULT_HUB_URL.into())
            .trim_end_matches('/')
            .to_owned();
        let token = token
            .filter(|t| !t.is_empty())
            .or_else(|| read_token(data_dir));
        HubClient {
            base,
            token,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> Result<Value> {
        self.call_with(method, path, &[], body, headers).await
    }

    /// A request with `query` parameters, URL-encoded. A mutation carries an `Idempotency-Key` and is sent again
    /// (up to [`TRIES`] times, backing off) when the hub could not be reached or asked for a retry.
    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> Result<Value> {
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
        let (status, text) = self.send(method, path, query, body, headers).await?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let msg = v["error"]["message"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_owned);
            let code = v["error"]["code"].as_str().unwrap_or("error");
            bail!("{status}: {code}: {msg}");
        }
        Ok(v)
    }

    /// Sends the request (a mutation with a key of its own, retried), and returns the last status and body.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<(reqwest::StatusCode, String)> {
        let mutation = method != reqwest::Method::GET;
        let key = mutation.then(|| uuid::Uuid::new_v4().to_string());
        let tries = if mutation { TRIES } else { 1 };
        let mut pause = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.request(method.clone(), path).query(query);
            if let Some(k) = &key {
                req = req.header("idempotency-key", k);
            }
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            let outcome = match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    res.text()
                        .await
                        .map(|t| (status, t))
                        .map_err(|e| (Some(status), e))
                }
                Err(e) => Err((None, e)),
            };
            let last = attempt >= tries;
            match outcome {
                Ok((status, text)) if last || !retryable(Some(status)) => {
                    return Ok((status, text));
                }
                Err((_, e)) if last => {
                    return Err(e).with_context(|| {
                        format!(
                            "no hub answers at {} (is `switchboard serve` running?)",
                            self.base
                        )
                    });
                }
                _ => {}
            }
            tracing::info!(
                attempt,
                path,
                "the hub did not answer; trying again with the same Idempotency-Key"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// A request to `path` with the token, for callers that read the answer themselves (streams).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The hub's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST path` with a body already serialised as JSON (bulk uploads), keyed and retried like every mutation.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        let (status, text) = self
            .send(reqwest::Method::POST, path, &[], Some(body), &[])
            .await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v["error"]["message"].as_str().unwrap_or("").to_owned();
            let code = v["error"]["code"].as_str().unwrap_or("error");
            bail!("{status}: {code}: {msg}");
        }
        Ok(v)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }

    /// `switchboard agents list`: the page after `cursor` (`filter` holds `status`, `q` and `limit`), or with
    /// `all` every page, as one `{agents, next_cursor}`.
    pub async fn list_agents(
        &self,
        filter: &[(&str, String)],
        mut cursor: Option<String>,
        all: bool,
    ) -> Result<Value> {
        let mut agents = Vec::new();
        loop {
            let mut query = filter.to_vec();
            query.extend(cursor.take().map(|c| ("cursor", c)));
            let page = self
                .call_with(reqwest::Method::GET, "/api/agents", &query, None, &[])
                .await?;
            let next = page["next_cursor"].as_str().map(str::to_owned);
            if !all {
                return Ok(page);
            }
            agents.extend(page["agents"].as_array().cloned().unwrap_or_default());
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(json!({"agents": agents, "next_cursor": null})),
            }
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body), &[])
            .await
    }
    /// `PATCH path` with a JSON body, conditional on `if_match`.
    pub async fn patch(&self, path: &str, body: Value, if_match: Option<i64>) -> Result<Value> {
        let h: Vec<(&str, String)> = if_match
            .map(|v| ("if-match", format!("\"{v}\"")))
            .into_iter()
            .collect();
        self.call(reqwest::Method::PATCH, path, Some(body), &h)
            .await
    }
    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// `switchboard tail`: streams events over WebSocket, reconnecting with backoff and resuming from the last
    /// `seq` it printed, until `stop` fires.
    pub async fn tail(
        &self,
        channel: &str,
        mut since: Option<u64>,
        json_lines: bool,
        stop: CancellationToken,
    ) -> Result<()> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let mut backoff = Duration::from_millis(250);
        loop {
            let mut url = format!("{ws_base}/ws?channels={channel}");
            if let Some(s) = since {
                url.push_str(&format!("&since={s}"));
            }
            let mut req = url.as_str().into_client_request()?;
            if let Some(t) = &self.token {
                req.headers_mut()
                    .insert("authorization", format!("Bearer {t}").parse()?);
            }
            let conn = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                c = tokio_tungstenite::connect_async(req) => c,
            };
            let (mut ws, _) = match conn {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the hub; retrying in {backoff:?}");
                    tokio::select! { () = stop.cancelled() => return Ok(()), () = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            backoff = Duration::from_millis(250);
            loop {
                let msg = tokio::select! {
                    () = stop.cancelled() => {
                        let _ = ws.close(None).await;
                        return Ok(());
                    }
                    m = ws.next() => m,
                };
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                match v["type"].as_str() {
                    Some("event") => {
                        since = v["seq"].as_u64().or(since);
                        print_event(&v, json_lines);
                    }
                    Some("error") => eprintln!("hub error: {}", v["error"]),
                    Some("connected") if since.is_none() => since = v["last_seq"].as_u64(),
                    Some("ack") if v["recovered"] == json!(false) => {
                        eprintln!("note: events before now were not recoverable; continuing live")
                    }
                    _ => {}
                }
            }
            tracing::info!("connection lost; resuming");
        }
    }
}

fn print_event(v: &Value, json_lines: bool) {
    if json_lines {
        let mut env = v.clone();
        if let Some(o) = env.as_object_mut() {
            o.remove("type");
        }
        println!("{env}");
    } else {
        println!(
            "{:>8}  {}  {:<8} {:<32} {:<20} {}",
            v["seq"],
            v["ts"].as_str().unwrap_or(""),
            v["source"].as_str().unwrap_or(""),
            v["channel"].as_str().unwrap_or(""),
            v["event"].as_str().unwrap_or(""),
            v["data"]
        );
    }
}
