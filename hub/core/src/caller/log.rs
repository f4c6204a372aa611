//! Replaying a logged event (`POST /api/events/{seq}/replay`, the window's Replay button): the event is published
//! again as a new one, `data` unchanged, `source: system` and `replay_of: seq` in its envelope, so a webapp sees it
//! exactly as it saw the original, and the log says where it came from.

use serde_json::Value;

use super::Caller;
use crate::error::{Error, Result};
use crate::hub::Published;
use crate::model::{EventDraft, Pattern, Source};

impl Caller {
    /// Publishes a copy of the logged event `seq` on its channel.
    ///
    /// # Errors
    /// 404 for a seq that is not in the log (never given out, or pruned) or on a channel out of the caller's reach;
    /// 403 without publish on its channel; 422 for the hub's own presence events, which only it publishes.
    pub async fn replay(&self, seq: u64) -> Result<Published> {
        let missing = || Error::not_found(format!("no event with seq {seq} in the log"));
        let ev = self.hub.reader().event(seq).await?.ok_or_else(missing)?;
        let channel = Pattern::Exact(ev.channel().to_owned());
        // Out of reach reads as absent: a caller learns nothing of channels it may not see.
        self.principal
            .may_subscribe(&channel)
            .map_err(|_| missing())?;
        if ev.event().starts_with("presence.") {
            return Err(Error::invalid(
                "seq",
                "presence events are the hub's own account of who is there; they are not replayed",
            ));
        }
        self.principal.may_publish(&channel)?;
        let data: Value = serde_json::from_str(ev.data().get()).map_err(Error::internal)?;
        let draft = EventDraft {
            channel: ev.channel().to_owned(),
            event: ev.event().to_owned(),
            data,
            source: Source::System,
            except: None,
            replay_of: Some(seq),
        };
        self.commit(draft).await
    }
}
