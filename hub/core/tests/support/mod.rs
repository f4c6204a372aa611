//! What the core's test files share: how long a test waits, and the next event of a session.

use std::time::Duration;

use switchboard_core::{Delivery, Event, Session};

/// How long a test waits for what it expects.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// The next event (skipping control frames), within [`WAIT`] in all.
pub(crate) async fn next_event(s: &mut Session) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Delivery::Event(e))) => return e,
            Ok(Some(Delivery::Control(_))) => {}
            Ok(None) => panic!("session ended"),
            Err(_) => panic!("no event within {WAIT:?}"),
        }
    }
}
