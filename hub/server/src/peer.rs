//! Accepted TCP connections the hub can close from outside: [`Listener`] wraps the bound socket, and every
//! request carries its connection's [`Peer`] (its address, and a switch that closes it) as
//! `ConnectInfo<Peer>`.
//!
//! Transports that own their socket close it themselves. Socket.IO's socket is owned by socketioxide, which can
//! only send a namespace `disconnect` (after which socket.io-client does not reconnect by itself, and which
//! cannot even be queued to a client that stopped reading). Closing the TCP connection instead is what a slow
//! consumer needs: the client sees a transport close, reconnects and resumes with its `since`.
//!
//! A connection must also deliver its first request head within [`HEAD_DEADLINE`] of being accepted, or it is
//! closed: hyper's own header timeout needs a timer that `axum::serve` does not give it, so a client trickling a
//! byte a second (or sending half a handshake and going quiet) would otherwise hold its socket for ever.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Sleep};

/// How long a new connection has to send its first request head (through the blank line that ends it).
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// The bound socket, handing out closable connections.
pub struct Listener(TcpListener);

impl Listener {
    /// Wraps a bound socket.
    pub fn new(l: TcpListener) -> Self {
        Listener(l)
    }
}

#[derive(Default)]
struct Switch {
    closed: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

/// One accepted connection, as requests see it.
#[derive(Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    switch: Arc<Switch>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

impl Peer {
    /// Closes the connection: its reads and writes fail from now on, so the server drops it, whoever owns it.
    pub fn close(&self) {
        self.switch.closed.store(true, Ordering::Release);
        self.switch.reader.wake();
        self.switch.writer.wake();
    }
}

impl Connected<IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let switch = Arc::new(Switch::default());
        let peer = Peer {
            addr,
            switch: switch.clone(),
        };
        let head = Some(Box::new(Head {
            deadline: Box::pin(tokio::time::sleep(HEAD_DEADLINE)),
            seen: 0,
        }));
        (
            Conn {
                stream,
                switch,
                head,
            },
            peer,
        )
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            switch: Arc::default(),
        })
    }
}

/// A TCP stream that fails once its [`Peer`] is closed, or when its first request head is late.
pub struct Conn {
    stream: TcpStream,
    switch: Arc<Switch>,
    /// Until the first request head is in: its deadline, and how much of `\r\n\r\n` the bytes so far end with.
    /// Boxed, and dropped once the head is in, so a connection pays for it only while it is new.
    head: Option<Box<Head>>,
}

struct Head {
    deadline: Pin<Box<Sleep>>,
    seen: u8,
}

impl Head {
    /// Reads `bytes` on; true once they complete the blank line that ends a request head.
    fn complete(&mut self, bytes: &[u8]) -> bool {
        const END: &[u8; 4] = b"\r\n\r\n";
        for &b in bytes {
            self.seen = if b == END[usize::from(self.seen)] {
                self.seen + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.seen == 4 {
                return true;
            }
        }
        false
    }
}

fn aborted<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed by the hub",
    )))
}

impl Conn {
    /// `poll` unless the connection was closed; when it is pending, a close wakes it through `waker`.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        reading: bool,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.switch.closed.load(Ordering::Acquire) {
            return aborted();
        }
        match poll(Pin::new(&mut self.stream), cx) {
            Poll::Pending => {
                let w = if reading {
                    &self.switch.reader
                } else {
                    &self.switch.writer
                };
                w.register(cx.waker());
                if self.switch.closed.load(Ordering::Acquire) {
                    aborted()
                } else {
                    Poll::Pending
                }
            }
            ready => ready,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(head) = this.head.as_mut() else {
            return this.guard(cx, true, |s, cx| s.poll_read(cx, buf));
        };
        // Polled with every read, so the deadline also wakes a connection that sends nothing at all.
        if head.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head within the deadline",
            )));
        }
        let before = buf.filled().len();
        let polled = this.guard(cx, true, |s, cx| s.poll_read(cx, buf));
        if matches!(polled, Poll::Ready(Ok(())))
            && this
                .head
                .as_mut()
                .is_some_and(|h| h.complete(&buf.filled()[before..]))
        {
            this.head = None;
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard(cx, false, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard(cx, false, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, false, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
            seen: 0,
        }
    }

    #[tokio::test]
    async fn a_request_head_ends_at_its_blank_line_however_it_is_split() {
        let req = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 0..req.len() {
            let mut h = head();
            let (a, b) = req.split_at(split);
            let done = h.complete(a) || h.complete(b);
            assert!(done, "split at {split}");
        }
        let mut h = head();
        assert!(!h.complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r"));
        assert!(!h.complete(b"\r\n"), "\\r\\r\\n is not the end");
        assert!(h.complete(b"\r\n\r\n"));
        let mut h = head();
        for b in b"GET / HTTP/1.1\r\n\r\r\n\r" {
            assert!(!h.complete(&[*b]));
        }
        assert!(h.complete(b"\n"));
    }
}
