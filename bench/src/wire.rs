//! The load tool's own minimal wire clients: a WebSocket receiver and an HTTP/1.1 keep-alive client.
//!
//! They are hand-written on purpose. One load-tool core must absorb every delivery of every peer, and a
//! general-purpose client (tokio-tungstenite) costs about twice the CPU per received frame (see
//! `../shared/PERF-NOTES.md`), which would make the instrument the bottleneck sooner. They implement only what the
//! benchmark needs: the upgrade handshake, unmasked server frames (text, ping → pong, close), masked text frames
//! for the protocols' handshakes and keep-alives, and HTTP requests with `Content-Length` or chunked answers.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a received frame is.
pub(crate) enum Frame<'a> {
    Text(&'a [u8]),
    Ping(&'a [u8]),
    Close,
    Other,
}

/// A client WebSocket that reads server frames out of its own buffer.
pub(crate) struct WsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl WsConn {
    /// Connects to `127.0.0.1:port` and upgrades `path`.
    pub(crate) async fn connect(port: u16, path: &str) -> Result<Self> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .context("connect")?;
        stream.set_nodelay(true)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(4096);
        let end = loop {
            if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                bail!("upgrade answer too long");
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("closed during upgrade");
            }
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&buf[..end.min(200)]).into_owned();
            bail!("upgrade refused: {head}");
        }
        Ok(WsConn {
            stream,
            buf,
            pos: end,
        })
    }

    /// The next frame, reading from the socket when the buffer holds no whole frame. `None` when the peer closed.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame<'_>>> {
        loop {
            if let Some((op, start, end)) = parse(&self.buf[self.pos..]) {
                let (s, e) = (self.pos + start, self.pos + end);
                self.pos = e;
                let payload = &self.buf[s..e];
                return Ok(Some(match op {
                    1 | 2 => Frame::Text(payload),
                    8 => Frame::Close,
                    9 => Frame::Ping(payload),
                    _ => Frame::Other,
                }));
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Sends a masked client frame (the mask key is zero: allowed, and servers do not care).
    pub(crate) async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        let mut f = Vec::with_capacity(payload.len() + 14);
        f.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        self.stream.write_all(&f).await?;
        Ok(())
    }
}

/// `(opcode, payload start, payload end)` of the first whole frame in `b`.
fn parse(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    let op = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if masked {
        at += 4;
    }
    (b.len() >= at + len).then_some((op, at, at + len))
}

/// The timestamp a benchmark message carries: the digits after `"BT` (the start of a JSON string, also inside a
/// JSON string that holds JSON, as Pusher's `data` does: `\"BT…`), so that `BT` inside an id is not taken for it.
pub(crate) fn stamp(payload: &[u8]) -> Option<u64> {
    let i = memchr::memmem::find(payload, b"\"BT")? + 3;
    let digits = payload[i..].iter().take_while(|c| c.is_ascii_digit());
    let mut n = 0u64;
    let mut any = false;
    for d in digits {
        n = n * 10 + u64::from(d - b'0');
        any = true;
    }
    any.then_some(n)
}

/// An HTTP/1.1 keep-alive connection.
pub(crate) struct HttpConn {
    stream: TcpStream,
    port: u16,
    buf: Vec<u8>,
}

/// An HTTP answer: status, body, and whether the server closes the connection after it (`Connection: close`,
/// as Sockudo's HTTP API answers every request).
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub close: bool,
}

impl HttpConn {
    pub(crate) async fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            port,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and reads its whole answer.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Answer> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        let mut req = Vec::with_capacity(head.len() + body.len());
        req.extend_from_slice(head.as_bytes());
        req.extend_from_slice(body);
        self.stream.write_all(&req).await?;
        self.buf.clear();
        let end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..end]).context("answer head")?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
        let body = if chunked {
            loop {
                if let Some(i) = memchr::memmem::find(&self.buf[end..], b"0\r\n\r\n") {
                    break dechunk(&self.buf[end..end + i + 5]);
                }
                self.fill().await?;
            }
        } else {
            let n = length.unwrap_or(0);
            while self.buf.len() < end + n {
                self.fill().await?;
            }
            self.buf[end..end + n].to_vec()
        };
        Ok(Answer {
            status,
            body,
            close,
        })
    }

    async fn fill(&mut self) -> Result<()> {
        if self.buf.len() > 1 << 20 {
            bail!("answer too long");
        }
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("connection closed");
        }
        Ok(())
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = memchr::memmem::find(b, b"\r\n") {
        let n = std::str::from_utf8(&b[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if n == 0 || b.len() < i + 2 + n {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[(i + 4 + n).min(b.len())..];
    }
    out
}

/// Waits until `GET <path>` (the server's health check) answers 200 on `port`.
pub(crate) async fn wait_healthy(port: u16, path: &str, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(mut c) = HttpConn::connect(port).await
            && let Ok(a) = c.request("GET", path, b"").await
            && a.status == 200
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nothing answered {path} on port {port} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_and_stamps() {
        let mut f = vec![0x81, 6];
        f.extend_from_slice(b"\"BT42x");
        assert_eq!(parse(&f), Some((1, 2, 8)));
        assert_eq!(parse(&f[..4]), None);
        assert_eq!(stamp(&f[2..]), Some(42));
        assert_eq!(stamp(br#"{"id":"01HBT9","m":"BT7"}"#), Some(7));
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'a', 256));
        assert_eq!(parse(&long), Some((1, 4, 260)));
        assert_eq!(stamp(b"{\"m\":\"none\"}"), None);
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
