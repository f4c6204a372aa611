//! Load generation on the tool's one core: subscriber connections that time every delivery, and an open-loop
//! publisher that sends at a fixed rate over a pool of keep-alive connections.
//!
//! Everything runs on a current-thread runtime inside a `LocalSet`, so the counters are plain `Cell`s. Every
//! message carries `BT<nanoseconds since the tool started>`; a delivery's latency is receive time minus that.
//!
//! A subscriber speaks its kind's protocol only as far as the benchmark needs: the handshake steps up to its
//! subscription ([`Kind::handshake`]), answers to protocol pings ([`Kind::keepalive`]), and after that every text
//! frame with a stamp is a delivery, whatever the envelope around it.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

use crate::peer::{Kind, Step};
use crate::wire::{Frame, HttpConn, WsConn, stamp};

/// Shared delivery counters and the latency histogram of the current measurement.
pub(crate) struct Sink {
    base: Instant,
    pub received: Cell<u64>,
    pub last_at: Cell<Instant>,
    pub hist: RefCell<Histogram<u64>>,
    pub ready: Cell<usize>,
    pub failed: Cell<usize>,
    pub closed: Cell<usize>,
    /// Connections now waiting at each handshake step (for the error when some never get subscribed).
    pub waiting: RefCell<Vec<usize>>,
    /// When set, each message's (stamp → first and last receive time, ns) across subscribers: how long one
    /// pass over the subscribers' sockets takes, apart from the time to the first subscriber.
    pub passes: RefCell<Option<std::collections::HashMap<u64, (u64, u64)>>>,
}

impl Sink {
    pub(crate) fn new() -> Rc<Sink> {
        let base = Instant::now();
        Rc::new(Sink {
            base,
            received: Cell::new(0),
            last_at: Cell::new(base),
            // Microseconds, up to 10 minutes, 3 significant figures.
            hist: RefCell::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")),
            ready: Cell::new(0),
            failed: Cell::new(0),
            closed: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
            passes: RefCell::new(None),
        })
    }

    /// Now, as the stamp a message sent now carries.
    pub(crate) fn stamp_now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn delivered(&self, sent_ns: u64) {
        let now = Instant::now();
        let now_ns = now.duration_since(self.base).as_nanos() as u64;
        let us = now_ns.saturating_sub(sent_ns) / 1000;
        let _ = self.hist.borrow_mut().record(us.max(1));
        if let Some(p) = self.passes.borrow_mut().as_mut() {
            let e = p.entry(sent_ns).or_insert((now_ns, now_ns));
            e.1 = now_ns;
        }
        self.received.set(self.received.get() + 1);
        self.last_at.set(now);
    }

    /// p50, p99 and p99.9 of the current histogram, in milliseconds.
    pub(crate) fn percentiles(&self) -> [f64; 3] {
        let h = self.hist.borrow();
        if h.is_empty() {
            return [f64::NAN; 3];
        }
        [0.5, 0.99, 0.999].map(|q| h.value_at_quantile(q) as f64 / 1000.0)
    }

    pub(crate) fn reset(&self) {
        self.hist.borrow_mut().reset();
        if let Some(p) = self.passes.borrow_mut().as_mut() {
            p.clear();
        }
    }

    /// Over the messages since the last reset (with `passes` set): p99 of send → first subscriber, and p50 and
    /// p99 of first → last subscriber, in milliseconds.
    pub(crate) fn pass_times(&self) -> [f64; 3] {
        let passes = self.passes.borrow();
        let Some(p) = passes.as_ref().filter(|p| !p.is_empty()) else {
            return [f64::NAN; 3];
        };
        let mut first: Vec<u64> = p
            .iter()
            .map(|(sent, (f, _))| f.saturating_sub(*sent))
            .collect();
        let mut pass: Vec<u64> = p.values().map(|(f, l)| l - f).collect();
        first.sort_unstable();
        pass.sort_unstable();
        let at = |v: &[u64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
        [at(&first, 0.99), at(&pass, 0.5), at(&pass, 0.99)]
    }
}

/// Open subscriber connections; dropping them closes the sockets.
pub(crate) struct Subscribers {
    tasks: Vec<JoinHandle<()>>,
}

impl Subscribers {
    pub(crate) fn new() -> Self {
        Subscribers { tasks: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Opens `more` connections (at most `parallel` handshakes at a time) and waits until each is subscribed.
    /// Returns the seconds it took.
    pub(crate) async fn open(
        &mut self,
        kind: Kind,
        port: u16,
        channel: &str,
        more: usize,
        sink: &Rc<Sink>,
    ) -> Result<f64> {
        let parallel = 256;
        let start = Instant::now();
        let deadline = start + Duration::from_secs(120);
        let target = sink.ready.get() + more;
        let path = Rc::new(kind.ws_path(channel));
        let steps = Rc::new(kind.handshake(channel));
        {
            let mut waiting = sink.waiting.borrow_mut();
            let len = waiting.len().max(steps.len());
            waiting.resize(len, 0);
        }
        let check = || -> Result<()> {
            if sink.failed.get() > 0 {
                bail!(
                    "{} of {} connections failed ({} ready)",
                    sink.failed.get(),
                    more,
                    sink.ready.get()
                );
            }
            if Instant::now() > deadline {
                let waiting = sink.waiting.borrow();
                bail!(
                    "only {} of {target} connections ready after {:?}; waiting at each handshake step: {:?}",
                    sink.ready.get(),
                    deadline - start,
                    &waiting[..],
                );
            }
            Ok(())
        };
        for _ in 0..more {
            while sink.ready.get() + sink.failed.get() + parallel <= self.tasks.len() {
                check()?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let sink = sink.clone();
            let path = path.clone();
            let steps = steps.clone();
            self.tasks.push(tokio::task::spawn_local(async move {
                subscriber(kind, port, &path, &steps, &sink).await;
            }));
        }
        while sink.ready.get() < target {
            check()?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(start.elapsed().as_secs_f64())
    }

    pub(crate) fn close(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.close();
    }
}

fn fail(sink: &Sink, why: &str) {
    if sink.failed.get() == 0 {
        eprintln!("{why}");
    }
    sink.failed.set(sink.failed.get() + 1);
}

async fn subscriber(kind: Kind, port: u16, path: &str, steps: &[Step], sink: &Sink) {
    let mut ws = match WsConn::connect(port, path).await {
        Ok(ws) => ws,
        Err(e) => {
            fail(sink, &format!("connect failed: {e:#}"));
            return;
        }
    };
    // The handshake step this connection waits on; subscribed once past the last.
    let mut step = 0;
    if steps.is_empty() {
        sink.ready.set(sink.ready.get() + 1);
    } else {
        sink.waiting.borrow_mut()[0] += 1;
    }
    loop {
        // What to send back: (opcode, payload).
        let reply: Option<(u8, Cow<'_, [u8]>)> = match ws.next().await {
            Ok(Some(Frame::Text(t))) => {
                if step == steps.len() {
                    if let Some(s) = stamp(t) {
                        sink.delivered(s);
                        None
                    } else {
                        kind.keepalive(t).map(|r| (1, Cow::Borrowed(r)))
                    }
                } else if (steps[step].done)(t) {
                    let then = steps[step].then.as_deref();
                    let mut waiting = sink.waiting.borrow_mut();
                    waiting[step] -= 1;
                    step += 1;
                    if step == steps.len() {
                        sink.ready.set(sink.ready.get() + 1);
                    } else {
                        waiting[step] += 1;
                    }
                    then.map(|m| (1, Cow::Borrowed(m)))
                } else if kind.refused(t) {
                    sink.waiting.borrow_mut()[step] -= 1;
                    let t = String::from_utf8_lossy(&t[..t.len().min(300)]).into_owned();
                    fail(
                        sink,
                        &format!("{} refused the subscription: {t}", kind.name()),
                    );
                    return;
                } else {
                    kind.keepalive(t).map(|r| (1, Cow::Borrowed(r)))
                }
            }
            Ok(Some(Frame::Ping(p))) => Some((0xA, Cow::Owned(p.to_vec()))),
            Ok(Some(Frame::Other)) => None,
            Ok(Some(Frame::Close)) | Ok(None) | Err(_) => break,
        };
        if let Some((op, payload)) = reply
            && ws.send(op, &payload).await.is_err()
        {
            break;
        }
    }
    if step < steps.len() {
        sink.waiting.borrow_mut()[step] -= 1;
        fail(
            sink,
            &format!("{} closed during the handshake", kind.name()),
        );
        return;
    }
    sink.closed.set(sink.closed.get() + 1);
}

/// How a run of requests went.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sent {
    pub ok: u64,
    pub failed: u64,
    /// Requests not sent because every pooled connection was still waiting for an answer.
    pub skipped: u64,
}

/// Sends `count` requests made by `make(i, stamp)` at `rate` per second, open loop, over at most `pool`
/// keep-alive connections, and waits (up to 30 s) for every answer.
pub(crate) async fn open_loop(
    port: u16,
    rate: f64,
    count: u64,
    pool: usize,
    sink: &Rc<Sink>,
    make: impl Fn(u64, u64) -> (&'static str, String, Vec<u8>),
) -> Sent {
    let idle: Rc<RefCell<Vec<HttpConn>>> = Rc::new(RefCell::new(Vec::new()));
    let open = Rc::new(Cell::new(0usize));
    let sent = Rc::new(Cell::new(Sent::default()));
    let in_flight = Rc::new(Cell::new(0usize));
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    for i in 0..count {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let conn = idle.borrow_mut().pop();
        if conn.is_none() && open.get() >= pool {
            let mut s = sent.get();
            s.skipped += 1;
            sent.set(s);
            continue;
        }
        let (method, path, body) = make(i, sink.stamp_now());
        let (idle, open, sent, in_flight) =
            (idle.clone(), open.clone(), sent.clone(), in_flight.clone());
        in_flight.set(in_flight.get() + 1);
        if conn.is_none() {
            open.set(open.get() + 1);
        }
        tokio::task::spawn_local(async move {
            let conn = match conn {
                Some(c) => Ok(c),
                None => HttpConn::connect(port).await,
            };
            // The connection goes back to the pool unless it failed or the server closes it after its answer.
            let answer = match conn {
                Ok(mut c) => match c.request(method, &path, &body).await {
                    Ok(a) => {
                        if !a.close {
                            idle.borrow_mut().push(c);
                        }
                        Some(a)
                    }
                    Err(_) => None,
                },
                Err(_) => None,
            };
            if answer.as_ref().is_none_or(|a| a.close) {
                open.set(open.get() - 1);
            }
            let mut s = sent.get();
            if answer.is_some_and(|a| (200..300).contains(&a.status)) {
                s.ok += 1;
            } else {
                s.failed += 1;
            }
            sent.set(s);
            in_flight.set(in_flight.get() - 1);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_flight.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sent.get()
}

/// Waits for a measured step's deliveries: until `sink` has `target`, or 3 s pass with nothing new (20 s at most).
pub(crate) async fn await_deliveries(sink: &Sink, target: u64) {
    drain(
        sink,
        target,
        Duration::from_secs(3),
        Duration::from_secs(20),
    )
    .await;
}

/// Waits until `sink` has `target` deliveries, or nothing arrived for `quiet`, or `max` passed.
pub(crate) async fn drain(sink: &Sink, target: u64, quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut seen = sink.received.get();
    let mut seen_at = Instant::now();
    while sink.received.get() < target && start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = sink.received.get();
        if r != seen {
            seen = r;
            seen_at = Instant::now();
        } else if seen_at.elapsed() > quiet {
            break;
        }
    }
}
