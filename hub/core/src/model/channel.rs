//! Channel names, event names and subscription patterns (SPEC §2), and the [`Scope`] of channels a caller may see.

use std::fmt;

use crate::error::{Error, Result};

fn channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-=@,.;:".contains(c)
}

/// Longest channel name.
pub const MAX_CHANNEL_LEN: usize = 164;

/// Checks a channel name: 1–164 characters from `A-Za-z0-9_-=@,.;:`.
///
/// # Errors
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming `field`.
pub fn check_channel(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CHANNEL_LEN || !name.chars().all(channel_char) {
        return Err(Error::invalid(
            field,
            "must be 1–164 characters from A-Za-z0-9_-=@,.;:",
        ));
    }
    Ok(())
}

/// Checks an event name: 1–120 printable characters.
///
/// # Errors
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming `event`.
pub fn check_event_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > 120 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            "event",
            "must be 1–120 characters without spaces or control characters",
        ));
    }
    Ok(())
}

/// True for channels that need authorization (`private-…`, `presence-…`).
pub fn is_private(channel: &str) -> bool {
    channel.starts_with("private-") || channel.starts_with("presence-")
}

/// A subscription: one channel, or every channel starting with a prefix (`agent:*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// One channel.
    Exact(String),
    /// The prefix before the trailing `*`; empty for `*`.
    Prefix(String),
}

impl Pattern {
    /// Every channel: `*`.
    pub fn all() -> Self {
        Pattern::Prefix(String::new())
    }

    /// Parses a channel name or a prefix pattern ending in `*`.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming `channel`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.strip_suffix('*') {
            Some(p) if p.chars().all(channel_char) && p.len() < MAX_CHANNEL_LEN => {
                Ok(Pattern::Prefix(p.into()))
            }
            Some(_) => Err(Error::invalid(
                "channel",
                "a pattern is a channel prefix followed by one trailing *",
            )),
            None => check_channel("channel", s).map(|_| Pattern::Exact(s.into())),
        }
    }

    /// Does this pattern match `channel`?
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Pattern::Exact(c) => c == channel,
            Pattern::Prefix(p) => channel.starts_with(p.as_str()),
        }
    }

    /// True when every channel `other` matches is also matched by `self` (used for JWT claims).
    pub fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Exact(a), Pattern::Exact(b)) => a == b,
            (Pattern::Exact(_), Pattern::Prefix(_)) => false,
            (Pattern::Prefix(p), Pattern::Exact(b)) | (Pattern::Prefix(p), Pattern::Prefix(b)) => {
                b.starts_with(p.as_str())
            }
        }
    }

    /// The channel or the prefix, without the `*`.
    pub(crate) fn stem(&self) -> &str {
        match self {
            Pattern::Exact(c) | Pattern::Prefix(c) => c,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(c) => f.write_str(c),
            Pattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// One pattern of a [`Scope`]: the channels it matches, and whether its `private-`/`presence-` ones are included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) pattern: Pattern,
    pub(crate) private_ok: bool,
}

/// The channels a read may return: a union of [`Reach`]es. Built by the access rules from a caller and what it
/// asked for, and turned into SQL by the store, so a page of the log is filtered before its `LIMIT`, not after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope(pub(crate) Vec<Reach>);

impl Scope {
    /// One pattern.
    pub(crate) fn one(pattern: Pattern, private_ok: bool) -> Self {
        Scope(vec![Reach {
            pattern,
            private_ok,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_match_and_cover() {
        let all = Pattern::parse("*").unwrap();
        let agents = Pattern::parse("agent:*").unwrap();
        let one = Pattern::parse("agent:1").unwrap();
        assert!(all.matches("x") && agents.matches("agent:1") && !agents.matches("global"));
        assert!(
            all.covers(&agents)
                && agents.covers(&one)
                && !one.covers(&agents)
                && !agents.covers(&all)
        );
        assert!(
            Pattern::parse("a*b").is_err()
                && Pattern::parse("").is_err()
                && Pattern::parse("sp ace").is_err()
        );
        assert!(Pattern::parse(&"x".repeat(165)).is_err());
        assert_eq!(all, Pattern::all());
    }
}
