//! `switchboard mcp` finds its hub: the one answering at the URL, the one running on the data dir (its lock file
//! says where), or a `switchboard serve` it starts in the background on the same data dir and waits for.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// How long a freshly started hub may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether a Switchboard hub answers `/health` at `url`.
pub async fn hub_answers(url: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    match client
        .get(format!("{}/health", url.trim_end_matches('/')))
        .send()
        .await
    {
        Ok(res) if res.status().is_success() => res
            .json::<Value>()
            .await
            .is_ok_and(|v| v["status"] == "ok" && v["version"].is_string()),
        _ => false,
    }
}

/// The port of a loopback `http://` URL; other URLs are not ours to start a hub for.
fn loopback_port(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let hostport = rest.split('/').next()?;
    let (host, port) = hostport
        .rsplit_once(':')
        .map_or((hostport, "80"), |(h, p)| (h, p));
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        .then(|| port.parse().ok())
        .flatten()
}

/// The URL of the hub that holds `data_dir`'s lock, if it answers there.
async fn hub_of(data_dir: &Path) -> Option<String> {
    let url = switchboard_server::lock::running_hub(data_dir)?.url?;
    hub_answers(&url).await.then_some(url)
}

/// Finds the hub to talk to: the one answering at `url`, else the one running on `data_dir`, else one it starts
/// with `switchboard serve` in the background. Returns its URL.
///
/// # Errors
/// When the URL is not a loopback `http://` URL with no hub behind it, or the started hub does not come up; the
/// message says why (with the end of the hub's log).
pub async fn ensure_hub(url: &str, data_dir: &Path, config: Option<&Path>) -> Result<String> {
    if hub_answers(url).await {
        return Ok(url.to_owned());
    }
    if let Some(found) = hub_of(data_dir).await {
        return Ok(found);
    }
    let Some(port) = loopback_port(url) else {
        bail!(
            "no Switchboard hub answers at {url}, and it is not a loopback http:// address this command could start one on"
        );
    };
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let log_path = data_dir.join("hub.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the switchboard binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(["serve", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    #[cfg(unix)]
    {
        // Its own process group: the IDE stopping this bridge must not stop the hub other clients share.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().context("starting `switchboard serve`")?;
    tracing::info!(pid = child.id(), port, "started a hub in the background");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if hub_answers(url).await {
            return Ok(url.to_owned());
        }
        if let Some(status) = child.try_wait()? {
            // Another bridge may have won the race for the port or the data dir: use its hub.
            if hub_answers(url).await {
                return Ok(url.to_owned());
            }
            if let Some(found) = hub_of(data_dir).await {
                return Ok(found);
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!(
                "the hub it started exited ({status}) before answering at {url}:\n{}",
                tail.join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the hub it started did not answer at {url} within {START_TIMEOUT:?}; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_urls_are_startable() {
        assert_eq!(super::loopback_port("http://127.0.0.1:4747"), Some(4747));
        assert_eq!(super::loopback_port("http://localhost:9/"), Some(9));
        assert_eq!(super::loopback_port("http://example.com:4747"), None);
        assert_eq!(super::loopback_port("https://127.0.0.1:4747"), None);
    }
}
