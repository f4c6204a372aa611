//! What both stores read the same way: the column lists, rows to values over [`Cols`] (which rusqlite's and
//! tokio-postgres's rows implement), and a [`Scope`] as an SQL condition with numbered parameters.

use crate::error::{Error, Result};
use crate::model::{Agent, Event, Pattern, Scope, Source};
use crate::questions::{Answer, PendingQuestion, QuestionRow, Via};

/// A result row, read by column index. Integers are `i64` in both databases.
pub(super) trait Cols {
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
}

impl Cols for tokio_postgres::Row {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
}

/// The agent columns, in the order [`agent`] reads them.
pub(super) const AGENT_COLS: &str =
    "id, name, description, model, status, config, tags, version, created_at, updated_at";

pub(super) fn agent(r: &impl Cols) -> Result<Agent> {
    Ok(Agent {
        id: r.text(0)?,
        name: r.text(1)?,
        description: r.text(2)?,
        model: r.opt_text(3)?,
        status: r.text(4)?,
        config: serde_json::from_str(&r.text(5)?).unwrap_or_default(),
        tags: serde_json::from_str(&r.text(6)?).unwrap_or_default(),
        version: r.int(7)?,
        created_at: r.text(8)?,
        updated_at: r.text(9)?,
    })
}

/// The event columns, in the order [`event`] reads them.
pub(super) const EVENT_COLS: &str = "seq, id, channel, event, data, source, ts, replay_of";

pub(super) fn event(r: &impl Cols) -> Result<Event> {
    let source = Source::parse(&r.text(5)?).unwrap_or(Source::System);
    let seq = u64::try_from(r.int(0)?).map_err(Error::internal)?;
    let replay_of = r.opt_int(7)?.and_then(|s| u64::try_from(s).ok());
    Event::from_parts(
        seq,
        r.text(1)?,
        r.text(2)?,
        r.text(3)?,
        r.text(4)?,
        source,
        r.text(6)?,
    )
    .map(|e| e.replay_of(replay_of))
}

/// The columns [`question`] reads, in order.
pub(super) const QUESTION_COLS: &str = "question_id, question, channel, options, key, via, asked_at, expires_at, state, answer, answered_by";

pub(super) fn question(r: &impl Cols) -> Result<QuestionRow> {
    let options = r.opt_text(3)?;
    let answer = r.opt_text(9)?;
    let by = r.opt_text(10)?;
    Ok(QuestionRow {
        info: PendingQuestion {
            question_id: r.text(0)?,
            question: r.text(1)?,
            channel: r.text(2)?,
            options: options.and_then(|o| serde_json::from_str(&o).ok()),
            key: r.opt_text(4)?,
            via: Via::parse(&r.text(5)?),
            asked_at: r.text(6)?,
            expires_at: r.text(7)?,
        },
        state: r.text(8)?,
        answer: answer.map(|a| Answer {
            answer: serde_json::from_str(&a).unwrap_or(serde_json::Value::Null),
            answered_by: by
                .as_deref()
                .and_then(Source::parse)
                .unwrap_or(Source::System),
        }),
    })
}

/// How a store numbers its parameters: SQLite's `?1`, PostgreSQL's `$1`.
#[derive(Clone, Copy)]
pub(super) enum Placeholder {
    Question,
    Dollar,
}

impl Placeholder {
    pub(super) fn at(self, n: usize) -> String {
        match self {
            Placeholder::Question => format!("?{n}"),
            Placeholder::Dollar => format!("${n}"),
        }
    }
}

/// The SQL condition for a scope, with its (text) parameters numbered from `first`. An empty scope matches
/// nothing. The same SQL works in SQLite and PostgreSQL.
pub(super) fn scope_sql(scope: &Scope, first: usize, p: Placeholder) -> (String, Vec<String>) {
    const PUBLIC: &str =
        "substr(channel, 1, 8) <> 'private-' AND substr(channel, 1, 9) <> 'presence-'";
    let mut args: Vec<String> = Vec::new();
    let parts: Vec<String> = scope
        .0
        .iter()
        .map(|r| {
            let matches = match &r.pattern {
                Pattern::Prefix(pre) if pre.is_empty() => "TRUE".to_owned(),
                Pattern::Exact(c) => {
                    args.push(c.clone());
                    format!("channel = {}", p.at(first + args.len() - 1))
                }
                Pattern::Prefix(pre) => {
                    args.push(pre.clone());
                    let n = p.at(first + args.len() - 1);
                    format!("substr(channel, 1, length({n})) = {n}")
                }
            };
            if r.private_ok {
                format!("({matches})")
            } else {
                format!("({matches} AND {PUBLIC})")
            }
        })
        .collect();
    if parts.is_empty() {
        ("FALSE".to_owned(), args)
    } else {
        (parts.join(" OR "), args)
    }
}

/// `%text%` for `LIKE … ESCAPE '\'`, with the text's own wildcards escaped.
pub(super) fn like_pattern(s: &str) -> String {
    let s = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{s}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reach;

    #[test]
    fn scope_sql_numbers_parameters_and_guards_private_channels() {
        let scope = Scope(vec![
            Reach {
                pattern: Pattern::all(),
                private_ok: false,
            },
            Reach {
                pattern: Pattern::Exact("private-a".into()),
                private_ok: true,
            },
            Reach {
                pattern: Pattern::Prefix("agent:".into()),
                private_ok: true,
            },
        ]);
        let (sql, args) = scope_sql(&scope, 3, Placeholder::Question);
        assert_eq!(args, ["private-a", "agent:"]);
        assert!(
            sql.contains("channel = ?3") && sql.contains("length(?4)"),
            "{sql}"
        );
        assert!(sql.starts_with("(TRUE AND substr"), "{sql}");
        let (sql, _) = scope_sql(&scope, 2, Placeholder::Dollar);
        assert!(
            sql.contains("channel = $2") && sql.contains("length($3)"),
            "{sql}"
        );
        assert_eq!(
            scope_sql(&Scope(Vec::new()), 1, Placeholder::Dollar).0,
            "FALSE"
        );
    }
}
