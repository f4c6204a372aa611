//! The subscription index: every connection by key, and who subscribes to what. Exact channels are a hash map;
//! prefix patterns a sorted map probed once per prefix of the event's channel, so matching costs the channel's
//! length, not the number of patterns. Each entry carries whether that subscription may see private channels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::queue::Conn;
use crate::model::{Pattern, is_private};

/// `(connection key, private_ok)` of one subscription.
type Entry = (u64, bool);

#[derive(Default)]
pub(super) struct Index {
    pub(super) conns: HashMap<u64, Arc<Conn>>,
    exact: HashMap<String, Vec<Entry>>,
    prefix: BTreeMap<String, Vec<Entry>>,
}

impl Index {
    /// Adds a subscription.
    pub(super) fn add(&mut self, p: &Pattern, key: u64, private_ok: bool) {
        let slot = match p {
            Pattern::Exact(c) => self.exact.entry(c.clone()).or_default(),
            Pattern::Prefix(x) => self.prefix.entry(x.clone()).or_default(),
        };
        slot.push((key, private_ok));
    }

    /// Removes a subscription, and its key once nobody holds it.
    pub(super) fn remove(&mut self, p: &Pattern, key: u64) {
        fn drop_key(v: Option<&mut Vec<Entry>>, key: u64) -> bool {
            v.is_some_and(|v| {
                v.retain(|(k, _)| *k != key);
                v.is_empty()
            })
        }
        match p {
            Pattern::Exact(c) => {
                if drop_key(self.exact.get_mut(c), key) {
                    self.exact.remove(c);
                }
            }
            Pattern::Prefix(x) => {
                if drop_key(self.prefix.get_mut(x), key) {
                    self.prefix.remove(x);
                }
            }
        }
    }

    /// Every subscription matching `channel`, exact first; a connection may appear more than once.
    pub(super) fn matching<'a>(&'a self, channel: &'a str) -> impl Iterator<Item = Entry> + 'a {
        let exact = self.exact.get(channel).into_iter().flatten().copied();
        let prefixes = (0..=channel.len())
            .filter(|i| channel.is_char_boundary(*i))
            .filter_map(move |i| self.prefix.get(&channel[..i]))
            .flatten()
            .copied();
        exact.chain(prefixes)
    }

    /// How many connections an event on `channel` reaches.
    pub(super) fn subscribers(&self, channel: &str) -> usize {
        let private = is_private(channel);
        self.matching(channel)
            .filter(|(_, ok)| *ok || !private)
            .map(|(k, _)| k)
            .collect::<HashSet<_>>()
            .len()
    }

    /// The channels someone subscribes to by name (not by pattern).
    pub(super) fn named_channels(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }
}
