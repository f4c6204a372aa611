//! Agents (SPEC §2): the stored shape, the create and merge-patch inputs with their validation, and a page of
//! agents. The inputs carry their JSON Schemas (feature `schema`), so MCP describes them from here.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::limits::{DEFAULT_AGENTS_PAGE, MAX_PAYLOAD_BYTES};

/// An agent as stored and as every transport shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Agent {
    /// A UUID, made by the hub.
    pub id: String,
    /// 1–120 characters.
    pub name: String,
    /// Up to 2000 characters.
    pub description: String,
    /// The model the agent runs on.
    pub model: Option<String>,
    /// A short lowercase word, `idle` by default.
    pub status: String,
    /// Free-form settings (never copied into events: they may hold secrets).
    pub config: Map<String, Value>,
    /// Up to 32 tags.
    pub tags: Vec<String>,
    /// 1 at create, +1 per update.
    pub version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// The body of a create. Unknown fields are refused so a typo is not silently dropped.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// 1–120 characters, not blank.
    pub name: String,
    /// Up to 2000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// The model the agent runs on, 1–120 characters.
    #[serde(default)]
    pub model: Option<String>,
    /// A short lowercase word (a-z, 0-9, `_` or `-`, at most 32); default `idle`.
    #[serde(default)]
    pub status: Option<String>,
    /// Free-form settings: a JSON object of at most 64 KiB.
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
    /// Up to 32 tags of 1–40 characters.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A JSON merge-patch (RFC 7396) of an agent. A field left out is unchanged; `null` clears the fields that may be
/// cleared (`description`, `model`, `tags`, `config` or one of its keys).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    /// 1–120 characters, not blank.
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub name: Option<String>,
    /// Up to 2000 characters; `null` empties it.
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    /// 1–120 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub model: Option<Option<String>>,
    /// A short lowercase word (a-z, 0-9, `_` or `-`, at most 32).
    #[serde(default, deserialize_with = "not_null")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub status: Option<String>,
    /// Merged into the current config (RFC 7396): a key set to `null` is removed; `null` empties the config. At most
    /// 64 KiB after the merge.
    #[serde(default, deserialize_with = "nullable")]
    pub config: Option<Option<Map<String, Value>>>,
    /// Up to 32 tags of 1–40 characters; `null` empties the list.
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Option<Option<Vec<String>>>,
    /// Fail with a version conflict unless the agent is at this version (the body twin of `If-Match`).
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// A field that may be `null`: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A field that may be left out but not set to `null`.
fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A filter for listing agents.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentQuery {
    /// Only agents with this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Case-insensitive text to find in the name or description.
    #[serde(default)]
    pub q: Option<String>,
    /// Page size, 1–500 (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl AgentQuery {
    /// The page size asked for, or the default.
    pub(crate) fn page_size(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_AGENTS_PAGE)
    }
}

/// One page of agents.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentPage {
    /// Oldest first.
    pub agents: Vec<Agent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<()> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(Error::invalid(
            field,
            format_args!("must be {min}–{max} characters, got {n}"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    check_len("name", name, 1, 120)?;
    if name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be blank"));
    }
    Ok(())
}

fn check_status(s: &str) -> Result<()> {
    let ok = (1..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "status",
            "must be a short lowercase word (a-z, 0-9, _ or -; ≤ 32)",
        ))
    }
}

fn check_config(c: &Map<String, Value>) -> Result<()> {
    let n = serde_json::to_vec(c).map(|v| v.len()).unwrap_or(usize::MAX);
    if n > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid(
            "config",
            format_args!("must serialise to ≤ 64 KiB, got {n} bytes"),
        ));
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<()> {
    if tags.len() > 32 {
        return Err(Error::invalid("tags", "at most 32 tags"));
    }
    for t in tags {
        check_len("tags", t, 1, 40)?;
    }
    Ok(())
}

fn check_model(m: Option<&str>) -> Result<()> {
    m.map_or(Ok(()), |m| check_len("model", m, 1, 120))
}

impl NewAgent {
    /// Validates every field and builds the agent to insert.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming the first bad field.
    pub(crate) fn into_agent(self, id: String, now: &str) -> Result<Agent> {
        check_name(&self.name)?;
        let description = self.description.unwrap_or_default();
        check_len("description", &description, 0, 2000)?;
        check_model(self.model.as_deref())?;
        let status = self.status.unwrap_or_else(|| "idle".into());
        check_status(&status)?;
        let config = self.config.unwrap_or_default();
        check_config(&config)?;
        let tags = self.tags.unwrap_or_default();
        check_tags(&tags)?;
        Ok(Agent {
            id,
            name: self.name,
            description,
            model: self.model,
            status,
            config,
            tags,
            version: 1,
            created_at: now.into(),
            updated_at: now.into(),
        })
    }
}

/// RFC 7396 merge of `patch` into `target`.
fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::Object(p) => {
                let slot = target.entry(k).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k, other);
            }
        }
    }
}

/// Sets `slot` to `value` and records `field` as changed when they differ.
fn set<T: PartialEq>(slot: &mut T, value: T, field: &'static str, changed: &mut Vec<&str>) {
    if *slot != value {
        *slot = value;
        changed.push(field);
    }
}

impl AgentPatch {
    /// Applies the patch to `agent`, validating every field it touches, and returns the names of the fields whose
    /// value changed. Does not touch `version` or `updated_at`.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming the first bad field; `agent` is then unspecified,
    /// so callers apply patches to a copy.
    pub(crate) fn apply(self, agent: &mut Agent) -> Result<Vec<&'static str>> {
        let mut changed = Vec::new();
        if let Some(name) = self.name {
            check_name(&name)?;
            set(&mut agent.name, name, "name", &mut changed);
        }
        if let Some(d) = self.description {
            let d = d.unwrap_or_default();
            check_len("description", &d, 0, 2000)?;
            set(&mut agent.description, d, "description", &mut changed);
        }
        if let Some(m) = self.model {
            check_model(m.as_deref())?;
            set(&mut agent.model, m, "model", &mut changed);
        }
        if let Some(s) = self.status {
            check_status(&s)?;
            set(&mut agent.status, s, "status", &mut changed);
        }
        if let Some(c) = self.config {
            let mut next = agent.config.clone();
            match c {
                None => next.clear(),
                Some(p) => merge_patch(&mut next, p),
            }
            check_config(&next)?;
            set(&mut agent.config, next, "config", &mut changed);
        }
        if let Some(t) = self.tags {
            let t = t.unwrap_or_default();
            check_tags(&t)?;
            set(&mut agent.tags, t, "tags", &mut changed);
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_merges_and_reports_changes() {
        let mut a = NewAgent {
            name: "a".into(),
            config: Some(json!({"k": {"x": 1, "y": 2}}).as_object().cloned().unwrap()),
            ..Default::default()
        }
        .into_agent("id".into(), "now")
        .unwrap();
        let p: AgentPatch = serde_json::from_value(
            json!({"config": {"k": {"x": null, "z": 3}}, "model": null, "status": "busy"}),
        )
        .unwrap();
        let changed = p.apply(&mut a).unwrap();
        assert_eq!(changed, vec!["status", "config"]);
        assert_eq!(
            Value::Object(a.config.clone()),
            json!({"k": {"y": 2, "z": 3}})
        );
        let bad: AgentPatch = serde_json::from_value(json!({"status": "Not A Word"})).unwrap();
        assert_eq!(
            bad.apply(&mut a.clone()).unwrap_err().code(),
            "invalid_field"
        );
        assert!(serde_json::from_value::<AgentPatch>(json!({"nmae": "x"})).is_err());
        assert!(
            serde_json::from_value::<AgentPatch>(json!({"name": null})).is_err(),
            "a name cannot be cleared"
        );
        let clear: AgentPatch =
            serde_json::from_value(json!({"tags": null, "description": null})).unwrap();
        assert_eq!(clear.tags, Some(None));
        assert_eq!(clear.name, None);
    }
}
