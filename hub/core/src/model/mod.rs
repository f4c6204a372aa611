//! The domain (SPEC §2), one file per concept:
//!
//! - [`agent`]: agents, their create and merge-patch inputs, validation, pages.
//! - [`event`]: the event envelope, what a publisher hands in, reads of the log.
//! - [`channel`]: channel names, subscription patterns, and the scope of channels a read may return.

pub mod agent;
pub mod channel;
pub mod event;

pub use agent::{Agent, AgentPage, AgentPatch, AgentQuery, NewAgent};
pub use channel::{Pattern, check_channel, check_event_name, is_private};
pub(crate) use channel::{Reach, Scope};
pub(crate) use event::EventDraft;
pub use event::{Event, EventsPage, EventsQuery, NewEvent, Source};
