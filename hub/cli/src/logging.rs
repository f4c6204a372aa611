//! The hub's log: `RUST_LOG` (or a default) to stderr, for `switchboard` and the desktop app alike.
//!
//! One kind of rmcp's ERROR lines is demoted: an answer that could not be sent because the client's stream is gone
//! (`fail to response message` or `failed to send pending response during drain`, with `error=channel closed`).
//! rmcp logs it when a client goes away while one of its requests is still being answered: a 2026-07-28
//! `subscriptions/listen` whose stream the client closed, a session ended while a call ran. The answer has nowhere
//! to go, and that is the client's choice, not a fault of the hub's; rmcp (3.11) has no way to say so, so these
//! lines are shown only when the log asks for debug detail.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// rmcp's messages for an answer it could not send.
const UNSENT: [&str; 2] = [
    "fail to response message",
    "failed to send pending response during drain",
];
/// The error that says the client's end is gone.
const GONE: &str = "channel closed";

/// Leaves out rmcp's errors about answers to a client that has gone, unless the log shows debug detail.
struct DemoteDrain {
    debug: bool,
}

/// The `message` and `error` fields of an event.
#[derive(Default)]
struct Fields {
    message: String,
    error: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = format!("{value:?}"),
            _ => {}
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
        let mut f = Fields::default();
        event.record(&mut f);
        !(UNSENT.contains(&f.message.as_str()) && f.error == GONE)
    }
}

/// The log layer: `filter`, then rmcp's unsent-answer errors left out unless `filter` shows debug detail.
fn layer<S, W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let debug = filter
        .max_level_hint()
        .is_none_or(|max| max >= tracing::level_filters::LevelFilter::DEBUG);
    fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer)
        .with_filter(filter)
        .with_filter(DemoteDrain { debug })
}

/// Logs to stderr at `RUST_LOG`, else at `default` (an `EnvFilter` directive such as `info,rmcp=warn`).
pub fn init(default: &str) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let layer = layer(filter, std::io::stderr, std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(directive: &str) -> String {
        let buf = Buffer::default();
        let out = buf.clone();
        let sub = tracing_subscriber::registry().with(layer(
            EnvFilter::new(directive),
            move || out.clone(),
            false,
        ));
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "rmcp::service", error = %"channel closed", "fail to response message");
            tracing::error!(target: "rmcp::service", error = %"channel closed", "failed to send pending response during drain");
            tracing::error!(target: "rmcp::service", error = %"broken pipe", "fail to response message");
            tracing::error!(target: "switchboard", "a real fault");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn answers_to_a_client_that_has_gone_are_debug_detail() {
        let text = logged("warn");
        assert_eq!(text.matches("ERROR").count(), 2, "{text}");
        assert!(
            text.contains("broken pipe") && text.contains("a real fault"),
            "{text}"
        );
        assert_eq!(logged("debug").matches("ERROR").count(), 4);
    }
}
