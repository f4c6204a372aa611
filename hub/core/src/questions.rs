//! Questions an IDE agent asks its user (`ask_user`), and their answers. A question is a row in SQLite (the
//! `questions` table) from the moment it is asked, so it outlives the asker's call and a hub restart: it stays
//! pending, listed and answerable until its deadline, when it is withdrawn. The first answer, from any transport,
//! wins and is handed to every asker waiting on it. Every step is also an event on the question's channel, in the
//! same transaction as the row: `question {question_id, question, options?, expires_at}`, then `question.answered
//! {question_id, answer, answered_by}` or `question.withdrawn {question_id, reason}`.
//!
//! This module keeps the pending ones in memory too (for listing and for waking askers); the database is the
//! record, and [`Questions::load`] rebuilds the memory from it when the hub opens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::model::{EventDraft, Source};
use crate::store::Write;

/// The channel questions and answers travel on unless a question names another.
pub const QUESTIONS_CHANNEL: &str = "questions";

/// Most choices a question may offer, and longest choice, in characters.
pub const MAX_OPTIONS: usize = 20;
const MAX_OPTION_CHARS: usize = 200;
/// Longest `key`, in characters.
const MAX_KEY_CHARS: usize = 200;

/// Where a question is asked (`ask_user`'s `via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The hub: the window, webapps (WS, Socket.IO, REST).
    Hub,
    /// The IDE's user, through MCP elicitation; nobody else is shown it.
    Ide,
    /// Both; the first answer wins.
    Both,
}

impl Via {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Hub => "hub",
            Via::Ide => "ide",
            Via::Both => "both",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "ide" => Via::Ide,
            "hub" => Via::Hub,
            _ => Via::Both,
        }
    }
}

/// A question waiting for its answer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PendingQuestion {
    /// A UUID.
    pub question_id: String,
    /// What was asked.
    pub question: String,
    /// The choices offered, if the answer is one of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Where it was published; only callers who may read it see the question.
    pub channel: String,
    /// RFC 3339 UTC.
    pub asked_at: String,
    /// When it is withdrawn if nobody answered (RFC 3339 UTC).
    pub expires_at: String,
    /// Where it is asked.
    pub via: Via,
    /// The asker's key: asking again with it joins this question instead of asking twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The first answer to a question.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// What the user answered (any JSON, usually a string).
    pub answer: Value,
    /// Which transport the answer came through.
    pub answered_by: Source,
}

/// What `Caller::ask` takes.
#[derive(Debug, Clone)]
pub struct Ask {
    /// 1–4000 characters.
    pub question: String,
    /// Default `questions`.
    pub channel: Option<String>,
    /// How long it stays pending.
    pub timeout: Duration,
    /// Asking again with the same key (on the same channel) joins the pending question, or gets its answer.
    pub key: Option<String>,
    /// The choices, 1–20 distinct strings of 1–200 characters.
    pub options: Option<Vec<String>>,
    /// Where it is asked.
    pub via: Via,
}

impl Ask {
    /// A question on the default channel, asked everywhere, pending for `timeout`.
    pub fn new(question: impl Into<String>, timeout: Duration) -> Self {
        Ask {
            question: question.into(),
            channel: None,
            timeout,
            key: None,
            options: None,
            via: Via::Both,
        }
    }

    /// Checks `key` and `options`.
    ///
    /// # Errors
    /// 422 naming the field.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(k) = &self.key
            && (k.is_empty() || k.chars().count() > MAX_KEY_CHARS)
        {
            return Err(Error::invalid(
                "key",
                format_args!("must be 1–{MAX_KEY_CHARS} characters"),
            ));
        }
        if let Some(o) = &self.options {
            if o.is_empty() || o.len() > MAX_OPTIONS {
                return Err(Error::invalid(
                    "options",
                    format_args!("1–{MAX_OPTIONS} choices"),
                ));
            }
            for (i, s) in o.iter().enumerate() {
                if s.trim().is_empty() || s.chars().count() > MAX_OPTION_CHARS {
                    return Err(Error::invalid(
                        &format!("options[{i}]"),
                        format_args!("must be 1–{MAX_OPTION_CHARS} characters"),
                    ));
                }
                if o[..i].contains(s) {
                    return Err(Error::invalid(&format!("options[{i}]"), "repeats a choice"));
                }
            }
        }
        Ok(())
    }
}

/// A row of the `questions` table.
#[derive(Debug, Clone)]
pub(crate) struct QuestionRow {
    pub(crate) info: PendingQuestion,
    /// `pending`, `answered` or `withdrawn`.
    pub(crate) state: String,
    pub(crate) answer: Option<Answer>,
}

struct Entry {
    info: PendingQuestion,
    waiters: Vec<oneshot::Sender<Answer>>,
    /// An answer or a withdrawal of it is being committed: it is no longer listed, answerable or due, so whoever
    /// sees its event never finds it still pending.
    closing: bool,
    /// Its `question` event is committed. Before that it is answerable (an answer may arrive the moment the event
    /// is out, before the asker's write returns) but not listed, due or found by key.
    committed: bool,
}

/// The pending questions of this hub, mirrored from the database, and who waits on each.
#[derive(Default)]
pub(crate) struct Questions {
    pending: Mutex<HashMap<String, Entry>>,
}

impl Questions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending questions kept in the database, when the hub opens.
    pub(crate) fn load(&self, pending: Vec<PendingQuestion>) {
        let mut map = self.lock();
        for info in pending {
            map.insert(
                info.question_id.clone(),
                Entry {
                    info,
                    waiters: Vec::new(),
                    closing: false,
                    committed: true,
                },
            );
        }
    }

    /// A question being asked: answerable (and waited on) from now, listed once [`Questions::committed`].
    pub(crate) fn opening(&self, info: PendingQuestion) {
        self.lock().insert(
            info.question_id.clone(),
            Entry {
                info,
                waiters: Vec::new(),
                closing: false,
                committed: false,
            },
        );
    }

    /// The question's `question` event is committed: it is listed, due and found by key from now on.
    pub(crate) fn committed(&self, question_id: &str) {
        if let Some(e) = self.lock().get_mut(question_id) {
            e.committed = true;
        }
    }

    /// Waits on a pending question: the receiver resolves with its answer, or fails when it is withdrawn. None if
    /// it is not pending.
    pub(crate) fn wait(&self, question_id: &str) -> Option<oneshot::Receiver<Answer>> {
        let mut map = self.lock();
        let e = map.get_mut(question_id)?;
        let (tx, rx) = oneshot::channel();
        e.waiters.push(tx);
        Some(rx)
    }

    /// The question, if it is pending.
    pub(crate) fn peek(&self, question_id: &str) -> Option<PendingQuestion> {
        self.lock()
            .get(question_id)
            .filter(|e| !e.closing)
            .map(|e| e.info.clone())
    }

    /// Claims a pending question for an answer or a withdrawal being committed; exactly one caller gets it.
    /// [`Questions::answered`] or [`Questions::withdrawn`] ends the claim, [`Questions::unclaim`] gives it back.
    pub(crate) fn claim(&self, question_id: &str) -> Option<PendingQuestion> {
        let mut map = self.lock();
        let e = map.get_mut(question_id).filter(|e| !e.closing)?;
        e.closing = true;
        Some(e.info.clone())
    }

    /// A claimed question whose write failed: pending again.
    pub(crate) fn unclaim(&self, question_id: &str) {
        if let Some(e) = self.lock().get_mut(question_id) {
            e.closing = false;
        }
    }

    /// The pending question asked on `channel` with `key`, if any.
    pub(crate) fn by_key(&self, channel: &str, key: &str) -> Option<PendingQuestion> {
        self.lock()
            .values()
            .find(|e| {
                e.committed
                    && !e.closing
                    && e.info.channel == channel
                    && e.info.key.as_deref() == Some(key)
            })
            .map(|e| e.info.clone())
    }

    /// The question was answered (committed): every waiter gets the answer.
    pub(crate) fn answered(&self, question_id: &str, answer: &Answer) {
        if let Some(e) = self.lock().remove(question_id) {
            for w in e.waiters {
                let _ = w.send(answer.clone());
            }
        }
    }

    /// The question was withdrawn (committed): its waiters see no answer.
    pub(crate) fn withdrawn(&self, question_id: &str) {
        self.lock().remove(question_id);
    }

    /// Lets every waiting asker go (shutdown); the questions stay pending in the database.
    pub(crate) fn release(&self) {
        for e in self.lock().values_mut() {
            e.waiters.clear();
        }
    }

    /// The pending questions, oldest first.
    pub(crate) fn list(&self) -> Vec<PendingQuestion> {
        let mut v: Vec<PendingQuestion> = self
            .lock()
            .values()
            .filter(|e| e.committed && !e.closing)
            .map(|e| e.info.clone())
            .collect();
        v.sort_by(|a, b| {
            a.asked_at
                .cmp(&b.asked_at)
                .then(a.question_id.cmp(&b.question_id))
        });
        v
    }

    /// The pending questions whose deadline has passed at `now` (RFC 3339, same format).
    pub(crate) fn due(&self, now: &str) -> Vec<String> {
        self.lock()
            .values()
            .filter(|e| e.committed && !e.closing && e.info.expires_at.as_str() <= now)
            .map(|e| e.info.question_id.clone())
            .collect()
    }
}

/// RFC 3339 UTC with milliseconds, as the store writes timestamps (so they compare as strings).
pub(crate) fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(channel: &str, name: &str, data: Value) -> EventDraft {
    EventDraft {
        channel: channel.to_owned(),
        event: name.to_owned(),
        data,
        source: Source::System,
        except: None,
        replay_of: None,
    }
}

/// Withdraws a pending question: the row is marked and `question.withdrawn {question_id, reason}` published, in
/// one transaction; its waiters see no answer. Nothing happens if it was answered or withdrawn already.
pub(crate) async fn withdraw(hub: &Hub, question_id: &str, reason: &str) -> Result<()> {
    let Some(q) = hub.questions().claim(question_id) else {
        return Ok(());
    };
    let ev = event(
        &q.channel,
        "question.withdrawn",
        json!({"question_id": question_id, "reason": reason}),
    );
    let w = Write::WithdrawQuestion {
        question_id: question_id.to_owned(),
        event: ev,
    };
    if let Err(e) = hub.write(w).await {
        hub.questions().unclaim(question_id);
        return Err(e);
    }
    hub.questions().withdrawn(question_id);
    Ok(())
}

/// Withdraws every pending question past its deadline; what `Hub::spawn_retention` runs every second.
pub(crate) async fn expire(hub: &Hub) {
    let now = rfc3339(chrono::Utc::now());
    for id in hub.questions().due(&now) {
        if let Err(e) = withdraw(hub, &id, "timeout").await {
            tracing::warn!(error = %e, question_id = %id, "could not withdraw an expired question");
        }
    }
}

/// A question that was asked (or joined, by its key). Dropping it leaves the question pending until its deadline:
/// asking again with the same key picks it up.
pub struct AskedQuestion {
    hub: Hub,
    /// The question's id, as the `question` event carried it.
    pub question_id: String,
    /// The question as it is pending.
    pub info: PendingQuestion,
    /// True when an earlier question with the same key was joined or answered, rather than a new one asked.
    pub joined: bool,
    state: AskState,
}

impl std::fmt::Debug for AskedQuestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskedQuestion")
            .field("question_id", &self.question_id)
            .field("joined", &self.joined)
            .finish()
    }
}

enum AskState {
    Waiting(oneshot::Receiver<Answer>),
    Answered(Answer),
    Gone,
}

impl AskedQuestion {
    pub(crate) fn waiting(hub: Hub, info: PendingQuestion, joined: bool) -> Self {
        let state = match hub.questions().wait(&info.question_id) {
            Some(rx) => AskState::Waiting(rx),
            None => AskState::Gone,
        };
        AskedQuestion {
            question_id: info.question_id.clone(),
            hub,
            info,
            joined,
            state,
        }
    }

    pub(crate) fn answered(hub: Hub, info: PendingQuestion, answer: Answer) -> Self {
        AskedQuestion {
            question_id: info.question_id.clone(),
            hub,
            info,
            joined: true,
            state: AskState::Answered(answer),
        }
    }

    /// Waits for the first answer. `None` when the question's deadline passes (it is then withdrawn) or `cancel`
    /// fires first (it then stays pending, for a later ask with the same key, until its deadline).
    pub async fn answer(self, cancel: &CancellationToken) -> Option<Answer> {
        let rx = match self.state {
            AskState::Answered(a) => return Some(a),
            AskState::Gone => return None,
            AskState::Waiting(rx) => rx,
        };
        let deadline = chrono::DateTime::parse_from_rfc3339(&self.info.expires_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let left = (deadline - chrono::Utc::now()).to_std().unwrap_or_default();
        let mut rx = rx;
        tokio::select! {
            r = &mut rx => r.ok(),
            () = tokio::time::sleep(left) => {
                if let Err(e) = withdraw(&self.hub, &self.question_id, "timeout").await {
                    tracing::debug!(error = %e, "could not withdraw a question");
                }
                // An answer that came in just before the deadline still counts.
                rx.try_recv().ok()
            }
            () = cancel.cancelled() => None,
        }
    }
}
