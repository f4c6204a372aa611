//! Pusher's additions to a session (SPEC §7), each decided here in the core: a private or presence subscription
//! allowed by the app secret's signature ([`SessionHandle::subscribe_signed`]), presence membership and its
//! announcements, sign-in ([`SessionHandle::sign_in`]) and client events ([`SessionHandle::client_event`]).

use serde_json::{Value, json};

use super::SessionHandle;
use super::session::{Resume, Subscribed};
use crate::error::{Error, Result};
use crate::hub::Published;
use crate::model::{EventDraft, NewEvent, Pattern, check_channel, is_private};
use crate::presence::{MEMBER_ADDED, PresenceMember};
use bytes::Bytes;

/// Publishes a presence change on `channel` in the background (a disconnect cannot wait for the commit).
pub(super) fn announce(
    hub: &crate::Hub,
    channel: &str,
    event: &str,
    data: Value,
    except: Option<&str>,
) {
    let draft = EventDraft {
        channel: channel.to_owned(),
        event: event.to_owned(),
        data,
        source: crate::model::Source::System,
        except: except.map(str::to_owned),
        replay_of: None,
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let hub = hub.clone();
    rt.spawn(async move {
        if let Err(e) = hub.commit(draft).await {
            tracing::warn!(error = %e, "could not publish a presence change");
        }
    });
}

/// Longest presence channel data, in bytes (Pusher's own limit for user data).
const MAX_CHANNEL_DATA: usize = 1024;

/// What a presence subscription's channel data says: `{user_id, user_info?}`; `user_id` a string or a number.
pub(crate) fn parse_member(channel_data: Option<&str>) -> Result<(String, Value)> {
    let bad = || {
        Error::invalid(
            "channel_data",
            "a presence channel needs channel_data: a JSON object with user_id (string or number), at most 1 KiB",
        )
    };
    let data = channel_data
        .filter(|d| d.len() <= MAX_CHANNEL_DATA)
        .ok_or_else(bad)?;
    let v: Value = serde_json::from_str(data).map_err(|_| bad())?;
    let user = match v.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad()),
    };
    Ok((user, v.get("user_info").cloned().unwrap_or(Value::Null)))
}

impl SessionHandle {
    /// Subscribes to one channel the Pusher way (SPEC §7). A public channel is an ordinary subscribe. A `private-`
    /// or `presence-` channel needs `auth`: the app secret's signature of this connection's id and the channel
    /// (in its Pusher spelling), plus `channel_data` for presence, as `/pusher/auth` or the app's own backend
    /// made it. Holding that signature is the authorization; the caller's own reach does not matter. A presence
    /// subscription joins the channel's members first (announcing a new user to the others), and `ack` gets the
    /// members, the new one included.
    ///
    /// # Errors
    /// `Forbidden` for a missing or wrong signature; 422 for a bad channel or channel data; what
    /// [`SessionHandle::subscribe`] refuses for a public channel.
    pub fn subscribe_signed(
        &self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
        resume: &Resume,
        ack: impl FnOnce(Subscribed, Option<&[PresenceMember]>) -> Option<Bytes>,
    ) -> Result<Subscribed> {
        check_channel("channel", channel)?;
        let pattern = Pattern::Exact(channel.to_owned());
        if !is_private(channel) {
            return self.subscribe(pattern, resume, |s| ack(s, None));
        }
        let hub = self.caller().hub();
        let wire = crate::pusher::to_wire(channel);
        let signed = auth.is_some_and(|a| {
            hub.pusher()
                .verify_channel_auth(self.id(), &wire, channel_data, a)
        });
        if !signed {
            return Err(Error::forbidden(format!(
                "{wire} needs a valid signature for this connection (from /pusher/auth or your auth endpoint)"
            )));
        }
        if !channel.starts_with("presence-") {
            return self.subscribe_as(pattern, true, resume, |s| ack(s, None));
        }
        let (user, info) = parse_member(channel_data)?;
        let presence = hub.presence();
        let (first, members) = presence.join(self.conn.key, channel, &user, info.clone());
        match self.subscribe_as(pattern, true, resume, |s| ack(s, Some(&members))) {
            Ok(s) => {
                if first {
                    let data = json!({"user_id": user, "user_info": info});
                    announce(hub, channel, MEMBER_ADDED, data, Some(self.id()));
                }
                Ok(s)
            }
            Err(e) => {
                presence.leave(self.conn.key, channel);
                Err(e)
            }
        }
    }

    /// Signs the connection in as a user (`pusher:signin`): `auth` is the app secret's signature of this
    /// connection's id and `user_data`, whose `id` names the user. Returns the user id.
    ///
    /// # Errors
    /// `Forbidden` for a wrong signature; 422 when `user_data` has no `id`.
    pub fn sign_in(&self, user_data: &str, auth: &str) -> Result<String> {
        let hub = self.caller().hub();
        let expected = hub.pusher().user_auth(self.id(), user_data);
        if !crate::auth::Secret::new(expected).matches(auth) {
            return Err(Error::forbidden(
                "invalid sign-in signature for this connection",
            ));
        }
        let user = crate::presence::user_of(user_data)?;
        hub.presence().sign_in(self.conn.key, &user);
        Ok(user)
    }

    /// Publishes a Pusher client event (SPEC §7): an event named `client-…` on a `private-` or `presence-`
    /// channel this connection is subscribed to, within the publish rate limit, delivered to everyone there but
    /// this connection. Being in the channel is the authorization, as in Pusher.
    pub fn client_event(
        &self,
        channel: &str,
        event: &str,
        data: Value,
    ) -> impl Future<Output = Result<Published>> + Send + 'static {
        let checked = self.check_client_event(channel, event, data);
        let hub = self.caller().hub().clone();
        async move { hub.commit(checked?).await }
    }

    fn check_client_event(&self, channel: &str, event: &str, data: Value) -> Result<EventDraft> {
        if !event.starts_with("client-") {
            return Err(Error::invalid("event", "client events are named client-…"));
        }
        if !is_private(channel) {
            return Err(Error::forbidden(
                "client events are allowed only on private- and presence- channels",
            ));
        }
        let subscribed = self
            .conn
            .subs()
            .iter()
            .any(|s| s.private_ok && matches!(&s.pattern, Pattern::Exact(c) if c == channel));
        if !subscribed {
            return Err(Error::forbidden(format!(
                "subscribe to {} before sending client events on it",
                crate::pusher::to_wire(channel)
            )));
        }
        self.spend()?;
        let mut draft =
            EventDraft::new(NewEvent::new(channel, event, data), self.caller().source())?;
        draft.except = Some(self.id().to_owned());
        Ok(draft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_channel_data_names_a_user_within_1_kib() {
        let (user, info) = parse_member(Some(r#"{"user_id":7,"user_info":{"n":"Ann"}}"#)).unwrap();
        assert_eq!((user.as_str(), info), ("7", json!({"n": "Ann"})));
        assert!(parse_member(None).is_err());
        assert!(parse_member(Some(r#"{"user_info":{}}"#)).is_err());
        assert!(parse_member(Some(r#"{"user_id":""}"#)).is_err());
        let big = format!(r#"{{"user_id":"a","user_info":"{}"}}"#, "x".repeat(2000));
        assert_eq!(
            parse_member(Some(&big)).unwrap_err().code(),
            "invalid_field"
        );
    }
}
