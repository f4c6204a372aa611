//! Presence (SPEC §7): who is in each `presence-` channel, and which user each connection signed in as.
//!
//! A user is a member of a channel while at least one of its connections is subscribed there; the first
//! connection in publishes [`MEMBER_ADDED`] on the channel and the last one out [`MEMBER_REMOVED`], through the log
//! like any other event, so every transport sees them (the Pusher adapter translates them to
//! `pusher_internal:member_added` / `member_removed`). The registry is in memory: after a restart, clients
//! subscribe again and so rejoin.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The event a user's first connection into a presence channel publishes: `{user_id, user_info}`.
pub const MEMBER_ADDED: &str = "presence.member_added";
/// The event a user's last connection out of a presence channel publishes: `{user_id}`.
pub const MEMBER_REMOVED: &str = "presence.member_removed";

/// One member of a presence channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PresenceMember {
    /// The user, as its channel data or sign-in named it.
    pub user_id: String,
    /// What it said about itself (`user_info`), or null.
    pub user_info: Value,
}

struct Member {
    info: Value,
    /// Connections of this user in the channel.
    conns: u32,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, BTreeMap<String, Member>>,
    /// Connection key → the `(channel, user)` memberships it holds.
    by_conn: HashMap<u64, Vec<(String, String)>>,
    /// Connection key → the user it signed in as.
    signed_in: HashMap<u64, String>,
}

/// The registry.
#[derive(Default)]
pub(crate) struct Presence {
    inner: Mutex<Inner>,
}

impl Presence {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds connection `key` to `channel` as `user`. Returns whether the user is new there, and the members
    /// after the join.
    pub(crate) fn join(
        &self,
        key: u64,
        channel: &str,
        user: &str,
        info: Value,
    ) -> (bool, Vec<PresenceMember>) {
        let mut g = self.lock();
        let held = g.by_conn.entry(key).or_default();
        if held.iter().any(|(c, _)| c == channel) {
            drop(g);
            return (false, self.members(channel));
        }
        held.push((channel.to_owned(), user.to_owned()));
        let members = g.channels.entry(channel.to_owned()).or_default();
        let first = match members.get_mut(user) {
            Some(m) => {
                m.conns += 1;
                false
            }
            None => {
                members.insert(user.to_owned(), Member { info, conns: 1 });
                true
            }
        };
        let list = snapshot(members);
        (first, list)
    }

    /// Takes connection `key` out of `channel`. Returns the user when it was that user's last connection there.
    pub(crate) fn leave(&self, key: u64, channel: &str) -> Option<String> {
        let mut g = self.lock();
        let held = g.by_conn.get_mut(&key)?;
        let i = held.iter().position(|(c, _)| c == channel)?;
        let (_, user) = held.swap_remove(i);
        if held.is_empty() {
            g.by_conn.remove(&key);
        }
        release(&mut g, channel, user)
    }

    /// Takes connection `key` out of everything (it disconnected). Returns `(channel, user)` for each user whose
    /// last connection it was.
    pub(crate) fn leave_all(&self, key: u64) -> Vec<(String, String)> {
        let mut g = self.lock();
        g.signed_in.remove(&key);
        let held = g.by_conn.remove(&key).unwrap_or_default();
        held.into_iter()
            .filter_map(|(channel, user)| release(&mut g, &channel, user).map(|u| (channel, u)))
            .collect()
    }

    /// The members of `channel`, by user id.
    pub(crate) fn members(&self, channel: &str) -> Vec<PresenceMember> {
        self.lock()
            .channels
            .get(channel)
            .map(snapshot)
            .unwrap_or_default()
    }

    /// The `(channel, user)` memberships of connection `key`.
    pub(crate) fn memberships(&self, key: u64) -> Vec<(String, String)> {
        self.lock().by_conn.get(&key).cloned().unwrap_or_default()
    }

    /// Records that connection `key` signed in as `user`.
    pub(crate) fn sign_in(&self, key: u64, user: &str) {
        self.lock().signed_in.insert(key, user.to_owned());
    }

    /// The user connection `key` signed in as.
    pub(crate) fn signed_in(&self, key: u64) -> Option<String> {
        self.lock().signed_in.get(&key).cloned()
    }

    /// The connections signed in as `user`.
    pub(crate) fn connections_of(&self, user: &str) -> Vec<u64> {
        self.lock()
            .signed_in
            .iter()
            .filter(|(_, u)| *u == user)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// The user a Pusher `user_data` names: its `id`, a non-empty string or a number.
///
/// # Errors
/// 422 naming `user_data` otherwise.
pub(crate) fn user_of(user_data: &str) -> crate::Result<String> {
    serde_json::from_str::<Value>(user_data)
        .ok()
        .and_then(|v| match v.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| crate::Error::invalid("user_data", "must be a JSON object with an id"))
}

fn release(g: &mut Inner, channel: &str, user: String) -> Option<String> {
    let members = g.channels.get_mut(channel)?;
    let m = members.get_mut(&user)?;
    m.conns -= 1;
    if m.conns > 0 {
        return None;
    }
    members.remove(&user);
    if members.is_empty() {
        g.channels.remove(channel);
    }
    Some(user)
}

fn snapshot(members: &BTreeMap<String, Member>) -> Vec<PresenceMember> {
    members
        .iter()
        .map(|(id, m)| PresenceMember {
            user_id: id.clone(),
            user_info: m.info.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_is_a_member_while_any_of_its_connections_is_in() {
        let p = Presence::default();
        assert!(p.join(1, "presence-r", "ann", json!({"n": 1})).0);
        assert!(
            !p.join(2, "presence-r", "ann", json!({"n": 2})).0,
            "second connection, same user"
        );
        let (first, list) = p.join(3, "presence-r", "bob", Value::Null);
        assert!(first);
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].user_info,
            json!({"n": 1}),
            "the first connection's info stays"
        );
        assert_eq!(p.leave(1, "presence-r"), None, "ann still has connection 2");
        assert_eq!(p.leave_all(2), vec![("presence-r".into(), "ann".into())]);
        assert_eq!(p.leave(3, "presence-r").as_deref(), Some("bob"));
        assert!(p.members("presence-r").is_empty());
        assert_eq!(p.leave(3, "presence-r"), None, "leaving twice is a no-op");
        p.sign_in(7, "ann");
        assert_eq!(p.connections_of("ann"), vec![7]);
        p.leave_all(7);
        assert!(p.signed_in(7).is_none());
    }
}
