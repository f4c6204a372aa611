//! Progress while a tool waits (`wait_for_event`, `ask_user`): `notifications/progress` at a steady beat, so a
//! client that restarts its request timeout on progress (the MCP spec's advice; rmcp's `reset_timeout_on_progress`,
//! the TypeScript SDK's `resetTimeoutOnProgress`) keeps waiting through a wait of minutes. Sent only when the
//! request carried a progress token (`_meta.progressToken`), as the spec asks.

use std::future::Future;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use tokio::time::{Instant, MissedTickBehavior};

/// How often progress goes out. Clients give up on a silent request after 10 s at the least (the TypeScript SDK's
/// shortest common setting), so one beat in 5 s keeps every such client waiting even if one beat is late.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// Runs `work` to its end and returns what it returns. Meanwhile, when the request carried a progress token, it
/// sends `notifications/progress` every [`EVERY`]: `progress` is the whole seconds waited so far (so it only
/// grows), `total` is `total_s`, and the message says what is awaited. A notification that cannot be sent (the
/// client is gone) is dropped: the wait itself decides when to end.
pub(crate) async fn reporting<F: Future>(
    ctx: &RequestContext<RoleServer>,
    total_s: u64,
    what: &str,
    work: F,
) -> F::Output {
    let Some(token) = ctx.meta.get_progress_token() else {
        return work.await;
    };
    let peer = ctx.peer.clone();
    beating(work, EVERY, |waited| {
        let secs = waited.as_secs();
        let p = ProgressNotificationParam::new(token.clone(), secs as f64)
            .with_total(total_s as f64)
            .with_message(format!("{what} ({secs} s of {total_s} s)"));
        let peer = peer.clone();
        async move {
            let _ = peer.notify_progress(p).await;
        }
    })
    .await
}

/// Runs `work`; every `every` until it ends, runs `beat(time since the start)`. `work` always wins: a beat still
/// being sent when `work` ends is dropped, so progress never delays a result or a cancellation.
async fn beating<F, B, Fut>(work: F, every: Duration, mut beat: B) -> F::Output
where
    F: Future,
    B: FnMut(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + every, every);
    // After a stall, one beat and then the old rhythm from there, not a burst of catch-up beats.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            _ = ticks.tick() => {
                let sent = beat(started.elapsed());
                tokio::select! {
                    biased;
                    out = &mut work => return out,
                    () = sent => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Runs a `work_s`-second wait under [`beating`] and returns the whole seconds of each beat.
    async fn beats_during(work_s: u64) -> Vec<u64> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        beating(
            tokio::time::sleep(Duration::from_secs(work_s)),
            EVERY,
            |waited| {
                let seen = seen.clone();
                async move { seen.lock().unwrap().push(waited.as_secs()) }
            },
        )
        .await;
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn beats_every_five_seconds_until_the_work_ends() {
        assert_eq!(beats_during(12).await, vec![5, 10]);
        assert_eq!(beats_during(31).await, vec![5, 10, 15, 20, 25, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_sends_nothing() {
        assert_eq!(beats_during(4).await, Vec::<u64>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn a_beat_that_hangs_never_holds_up_the_result() {
        let started = Instant::now();
        let out = beating(
            async {
                tokio::time::sleep(Duration::from_secs(7)).await;
                "done"
            },
            EVERY,
            |_| std::future::pending::<()>(),
        )
        .await;
        assert_eq!(out, "done");
        assert_eq!(
            started.elapsed().as_secs(),
            7,
            "the result came at its own time"
        );
    }
}
