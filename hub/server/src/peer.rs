//! Accepted TCP connections the hub can close from outside: [`Listener`] wraps the bound socket, and every
//! request carries its connection's [`Peer`] (its address, and a switch that closes it) as
//! `ConnectInfo<Peer>`.
//!
//! Transports that own their socket close it themselves. Socket.IO's socket is owned by socketioxide, which can
//! only send a namespace `disconnect` (after which socket.io-client does not reconnect by itself, and which
//! cannot even be queued to a client that stopped reading). Closing the TCP connection instead is what a slow
//! consumer needs: the client sees a transport close, reconnects and resumes with its `since`.

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
        (Conn { stream, switch }, peer)
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            switch: Arc::default(),
        })
    }
}

/// A TCP stream that fails once its [`Peer`] is closed.
pub struct Conn {
    stream: TcpStream,
    switch: Arc<Switch>,
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
        self.get_mut().guard(cx, true, |s, cx| s.poll_read(cx, buf))
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
