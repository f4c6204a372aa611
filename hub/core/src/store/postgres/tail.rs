//! The tail: each hub's only broadcast source. It follows the shared log from the last `seq` it handed to the
//! bus and delivers every later event once, in order, whichever hub wrote it.
//!
//! It wakes on `NOTIFY switchboard_log` (its own connection, which `LISTEN`s), on this hub's own commits (a
//! direct kick, so local writes do not wait for the round trip), and every [`POLL`] as the safety net for a lost
//! notification or a listener that is reconnecting. Because `seq` is given out under a row lock held until commit
//! (see `rows`), a committed `seq` N+1 means N is committed too: a page read after `through` is contiguous unless
//! retention pruned the events between. A hole is only skipped once the pruned mark covers it (or after
//! [`GAP_PATIENCE`], with a warning, so a row deleted by hand cannot stall every hub).
//!
//! The writer waits on [`Tail::delivered`] to answer its callers, and reads how many subscribers each event
//! reached from the last [`COUNTS_KEPT`] deliveries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::NOTIFY_CHANNEL;
use crate::error::Result;
use crate::model::Event;
use crate::store::CommitSink;
use crate::store::row::{self, EVENT_COLS};

/// The safety-net poll.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// Events read per query.
const PAGE: i64 = 1000;

/// How long a hole not covered by retention may hold up the tail before it is skipped.
const GAP_PATIENCE: Duration = Duration::from_secs(10);

/// Per-event subscriber counts kept for the writer's answers.
const COUNTS_KEPT: usize = 65_536;

/// Wait between attempts to reach the database while it is away.
const RETRY: Duration = Duration::from_millis(500);

/// What the tail shares with the writer.
pub(super) struct Tail {
    /// The highest `seq` handed to the bus.
    delivered: watch::Sender<u64>,
    counts: Mutex<VecDeque<(u64, usize)>>,
    kick: Notify,
    stop: CancellationToken,
}

impl Tail {
    /// Starts following the log after `from`.
    pub(super) fn start(
        pool: Pool,
        cfg: tokio_postgres::Config,
        sink: Arc<dyn CommitSink>,
        from: u64,
        pruned_through: Arc<AtomicU64>,
    ) -> Arc<Tail> {
        let tail = Arc::new(Tail {
            delivered: watch::Sender::new(from),
            counts: Mutex::new(VecDeque::new()),
            kick: Notify::new(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(run(tail.clone(), pool, cfg, sink, pruned_through));
        tail
    }

    /// Wakes the tail now: this hub just committed.
    pub(super) fn kick(&self) {
        self.kick.notify_one();
    }

    /// Stops the tail.
    pub(super) fn stop(&self) {
        self.stop.cancel();
    }

    /// Watches the highest `seq` delivered.
    pub(super) fn delivered(&self) -> watch::Receiver<u64> {
        self.delivered.subscribe()
    }

    /// How many subscribers the event at `seq` reached, if it is among the last deliveries.
    pub(super) fn count(&self, seq: u64) -> Option<usize> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let first = counts.front()?.0;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        counts.get(i).filter(|(s, _)| *s == seq).map(|(_, n)| *n)
    }

    fn record(&self, events: &[Event], reached: &[usize]) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (e, n) in events.iter().zip(reached) {
            // Kept contiguous so `count` can index: a skipped hole starts the record afresh.
            if counts.back().is_some_and(|(s, _)| s + 1 != e.seq()) {
                counts.clear();
            }
            counts.push_back((e.seq(), *n));
        }
        let excess = counts.len().saturating_sub(COUNTS_KEPT);
        counts.drain(..excess);
    }
}

/// A `LISTEN`ing connection: its receiver yields once per notification and ends when the connection does.
/// The client is kept beside it; dropping it closes the connection.
struct Listener {
    notes: mpsc::UnboundedReceiver<()>,
    _client: tokio_postgres::Client,
}

async fn listen(cfg: &tokio_postgres::Config) -> Result<Listener> {
    let (client, mut conn) = cfg.connect(NoTls).await?;
    let (tx, notes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the log listener's connection ended");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await?;
    Ok(Listener {
        notes,
        _client: client,
    })
}

async fn run(
    tail: Arc<Tail>,
    pool: Pool,
    cfg: tokio_postgres::Config,
    sink: Arc<dyn CommitSink>,
    pruned_through: Arc<AtomicU64>,
) {
    let mut through = *tail.delivered.borrow();
    let mut listener: Option<Listener> = None;
    let mut gap_since: Option<Instant> = None;
    let mut away = false;
    loop {
        if listener.is_none() {
            match listen(&cfg).await {
                Ok(l) => listener = Some(l),
                Err(e) => tracing::debug!(error = %e, "log listener not connected yet"),
            }
        }
        let wait = if away || listener.is_none() {
            RETRY
        } else {
            POLL
        };
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.notes.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        let lost_listener = tokio::select! {
            () = tail.stop.cancelled() => break,
            alive = notified => !alive,
            () = tail.kick.notified() => false,
            () = tokio::time::sleep(wait) => false,
        };
        if lost_listener {
            listener = None;
        }
        match catch_up(
            &tail,
            &pool,
            &*sink,
            &mut through,
            &pruned_through,
            &mut gap_since,
        )
        .await
        {
            Ok(()) => {
                if away {
                    tracing::info!(through, "the log tail is following again");
                }
                away = false;
            }
            Err(e) => {
                if !away {
                    tracing::warn!(error = %e, through, "the log tail cannot read the database; retrying");
                }
                away = true;
            }
        }
    }
    tracing::debug!("log tail stopped");
}

/// Delivers every committed event after `through`, page by page.
async fn catch_up(
    tail: &Tail,
    pool: &Pool,
    sink: &dyn CommitSink,
    through: &mut u64,
    pruned_through: &AtomicU64,
    gap_since: &mut Option<Instant>,
) -> Result<()> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {EVENT_COLS}, except_conn FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
    );
    let stmt = client.prepare_cached(&sql).await?;
    loop {
        let after = i64::try_from(*through).unwrap_or(i64::MAX);
        let rows = client.query(&stmt, &[&after, &PAGE]).await?;
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let first_seq = u64::try_from(first.try_get::<_, i64>(0)?).unwrap_or(0);
        if first_seq != *through + 1 {
            // Pruned by retention (on any hub), or a hole that should not exist.
            let r = client
                .query_one("SELECT value FROM meta WHERE key = 'pruned_through'", &[])
                .await?;
            let mark: u64 = r.get::<_, String>(0).parse().unwrap_or(0);
            pruned_through.fetch_max(mark, Ordering::AcqRel);
            let patience_over = gap_since.get_or_insert_with(Instant::now).elapsed() > GAP_PATIENCE;
            if mark + 1 < first_seq && !patience_over {
                return Ok(());
            }
            if mark + 1 < first_seq {
                tracing::warn!(
                    after = *through,
                    next = first_seq,
                    "skipping a hole in the log"
                );
            }
        }
        *gap_since = None;
        let mut events = Vec::with_capacity(rows.len());
        let mut expect = first_seq;
        for r in &rows {
            let except: Option<String> = r.try_get(8)?;
            let e = row::event(r)?.except(except.as_deref());
            if e.seq() != expect {
                break;
            }
            expect += 1;
            events.push(e);
        }
        let reached = sink.committed(&events);
        tail.record(&events, &reached);
        *through = expect - 1;
        tail.delivered.send_replace(*through);
        if events.len() < rows.len() || rows.len() < PAGE as usize {
            // A hole within the page is looked at again on the next wake-up.
            return Ok(());
        }
    }
}
