//! `switchboard mcp`: MCP over stdio for IDEs, forwarded message by message to the hub's `/mcp`. Nothing is
//! implemented here; every tool and resource runs in the hub, so both ways in behave the same.

use anyhow::{Result, anyhow};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{RoleClient, RoleServer};

/// Pumps MCP messages between this process's stdin/stdout and the hub at `mcp_url` until either side closes.
///
/// # Errors
/// When the hub's transport closes or a message cannot be written to stdout.
pub async fn run(mcp_url: &str, token: Option<String>) -> Result<()> {
    let (stdin, stdout) = rmcp::transport::stdio();
    let mut ide = AsyncRwTransport::<RoleServer, _, _>::new_server(stdin, stdout);
    let mut config = StreamableHttpClientTransportConfig::with_uri(mcp_url.to_owned());
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    let mut hub = StreamableHttpClientTransport::from_config(config);
    // Each send is a POST; keep the futures alive (dropping one cancels its request) and drive them here.
    let mut sends = FuturesUnordered::new();
    let result = loop {
        tokio::select! {
            msg = Transport::<RoleServer>::receive(&mut ide) => {
                let Some(msg) = msg else { break Ok(()) };
                sends.push(Transport::<RoleClient>::send(&mut hub, msg));
            }
            msg = Transport::<RoleClient>::receive(&mut hub) => {
                let Some(msg) = msg else { break Err(anyhow!("the hub at {mcp_url} closed the MCP session")) };
                if let Err(e) = Transport::<RoleServer>::send(&mut ide, msg).await {
                    break Err(anyhow!("writing to stdout: {e}"));
                }
            }
            Some(res) = sends.next(), if !sends.is_empty() => {
                if let Err(e) = res {
                    tracing::warn!(error = %e, "forwarding a message to the hub failed");
                }
            }
        }
    };
    drop(sends);
    let _ = Transport::<RoleClient>::close(&mut hub).await;
    let _ = Transport::<RoleServer>::close(&mut ide).await;
    result
}
