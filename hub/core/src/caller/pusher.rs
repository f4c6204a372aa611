//! The Pusher operations of a [`Caller`] (SPEC §7): signing a channel subscription or a sign-in for a socket, only
//! for what this caller may do, and terminating a user's connections.

use serde_json::{Value, json};

use super::Caller;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::model::Pattern;

impl Caller {
    /// Signs `socket_id` into a Pusher channel (`/pusher/auth`, SPEC §7): `{auth}`, plus `channel_data` for a
    /// presence channel. `channel` is the Pusher spelling.
    ///
    /// # Errors
    /// 422 for a bad channel, socket id or channel data; 403 when the caller may not read the channel, or signs
    /// a presence member other than its own `sub`.
    pub fn pusher_channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<String>,
    ) -> Result<Value> {
        check_socket_id(socket_id)?;
        let name = crate::pusher::from_wire(channel)
            .ok_or_else(|| Error::invalid("channel_name", "is not a valid channel name"))?;
        self.principal
            .may_subscribe(&Pattern::Exact(name.clone()))?;
        let app = self.hub.pusher();
        if !name.starts_with("presence-") {
            return Ok(json!({"auth": app.channel_auth(socket_id, channel, None)}));
        }
        let data = match channel_data {
            Some(d) => d,
            // A JWT with a `sub` names its user itself.
            None => match self.principal.user() {
                Some(u) => json!({"user_id": u}).to_string(),
                None => {
                    return Err(Error::invalid(
                        "channel_data",
                        "a presence channel needs channel_data with a user_id",
                    ));
                }
            },
        };
        let (user, _) = crate::bus::parse_member(Some(&data))?;
        self.may_act_as(&user)?;
        Ok(json!({
            "auth": app.channel_auth(socket_id, channel, Some(&data)),
            "channel_data": data,
        }))
    }

    /// Signs `socket_id` in as the user `user_data` names (`/pusher/user-auth`): `{auth, user_data}`.
    ///
    /// # Errors
    /// 422 for a bad socket id or user data; 403 unless the caller is the owner or a JWT whose `sub` is that user.
    pub fn pusher_user_auth(&self, socket_id: &str, user_data: Option<String>) -> Result<Value> {
        check_socket_id(socket_id)?;
        let data = match user_data {
            Some(d) => d,
            None => match self.principal.user() {
                Some(u) => json!({ "id": u }).to_string(),
                None => {
                    return Err(Error::invalid(
                        "user_data",
                        "must name the user: {\"id\": …}",
                    ));
                }
            },
        };
        let user = crate::presence::user_of(&data)?;
        if matches!(self.principal, Principal::Anonymous) {
            return Err(Error::forbidden(
                "signing in as a user needs the hub token or a JWT naming that user",
            ));
        }
        self.may_act_as(&user)?;
        Ok(json!({
            "auth": self.hub.pusher().user_auth(socket_id, &data),
            "user_data": data,
        }))
    }

    /// May this caller speak for `user`? The owner may; a JWT only for its own `sub`.
    fn may_act_as(&self, user: &str) -> Result<()> {
        match &self.principal {
            Principal::Jwt(_) if self.principal.user() != Some(user) => {
                Err(Error::forbidden(format!(
                    "a JWT may sign only its own user ({:?}), not {user:?}",
                    self.principal.user()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Closes every connection signed in as `user` (Pusher's `terminate_connections`). Returns how many.
    ///
    /// # Errors
    /// 403 unless the caller is the owner.
    pub fn terminate_user(&self, user: &str) -> Result<usize> {
        if !self.principal.may_read_token() {
            return Err(Error::forbidden(
                "only the hub's owner may terminate connections",
            ));
        }
        let keys = self.hub.presence().connections_of(user);
        Ok(self
            .hub
            .bus()
            .terminate(&keys, crate::bus::CLOSE_TERMINATED))
    }
}

/// A Pusher socket id: `digits.digits`.
fn check_socket_id(id: &str) -> Result<()> {
    let ok = id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.len() <= 20
            && b.len() <= 20
            && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("socket_id", "must look like 1234.5678"))
    }
}
