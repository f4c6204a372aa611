//! The hub's log: `RUST_LOG` (or a default) to stderr, for `switchboard` and the desktop app alike.
//!
//! One message of rmcp's is demoted: "failed to send pending response during drain", which rmcp logs at ERROR when
//! a client goes away while one of its requests is still being answered (a 2026-07-28 `subscriptions/listen` whose
//! stream the client closed, or a wait cut short by the client). The answer has nowhere to go, and that is the
//! client's choice, not a fault of the hub's; rmcp 3.9 has no way to say so, so the line is shown only when the log
//! asks for debug detail.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// rmcp's message for an answer to a client that has gone.
const DRAIN: &str = "failed to send pending response during drain";

/// Leaves out rmcp's [`DRAIN`] error unless the log shows debug detail.
struct DemoteDrain {
    debug: bool,
}

struct IsDrain(bool);

impl Visit for IsDrain {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value == DRAIN;
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}") == DRAIN;
        }
    }
}

impl<S: Subscriber> Filter<S> for DemoteDrain {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        let m = event.metadata();
        if self.debug || *m.level() != Level::ERROR || !m.target().starts_with("rmcp::service") {
            return true;
        }
        let mut v = IsDrain(false);
        event.record(&mut v);
        !v.0
    }
}

/// Logs to stderr at `RUST_LOG`, else at `default` (an `EnvFilter` directive such as `info,rmcp=warn`).
pub fn init(default: &str) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let debug = filter
        .max_level_hint()
        .is_none_or(|max| max >= tracing::level_filters::LevelFilter::DEBUG);
    let layer = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter)
        .with_filter(DemoteDrain { debug });
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
