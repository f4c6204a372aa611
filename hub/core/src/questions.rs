//! Questions an IDE agent asks its user (`ask_user`), and their answers. A question is pending in memory while
//! its asker waits; the first answer, from any transport, wins and is handed to the asker. Both ends are also
//! events (`question` and `answer` on the question's channel) so every client and the log see them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::model::{EventDraft, NewEvent, Source};

/// The channel questions and answers travel on unless a question names another.
pub const QUESTIONS_CHANNEL: &str = "questions";

/// A question waiting for its answer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PendingQuestion {
    /// A UUID.
    pub question_id: String,
    /// What was asked.
    pub question: String,
    /// Where it was published; only callers who may read it see the question.
    pub channel: String,
    /// RFC 3339 UTC.
    pub asked_at: String,
}

/// The first answer to a question.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// What the user answered (any JSON, usually a string).
    pub answer: Value,
    /// Which transport the answer came through.
    pub answered_by: Source,
}

struct Entry {
    info: PendingQuestion,
    reply: oneshot::Sender<Answer>,
}

/// The pending questions of this hub.
#[derive(Default)]
pub(crate) struct Questions {
    pending: Mutex<HashMap<String, Entry>>,
}

impl Questions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a question; the receiver resolves with its first answer.
    pub(crate) fn open(&self, info: PendingQuestion) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .insert(info.question_id.clone(), Entry { info, reply: tx });
        rx
    }

    /// The question, if it is pending.
    pub(crate) fn peek(&self, question_id: &str) -> Option<PendingQuestion> {
        self.lock().get(question_id).map(|e| e.info.clone())
    }

    /// Takes the question out of the pending set, if it is still there. Exactly one caller gets `Some`.
    pub(crate) fn take(
        &self,
        question_id: &str,
    ) -> Option<(PendingQuestion, oneshot::Sender<Answer>)> {
        self.lock().remove(question_id).map(|e| (e.info, e.reply))
    }

    /// Puts back a question whose answer could not be published.
    pub(crate) fn restore(&self, info: PendingQuestion, reply: oneshot::Sender<Answer>) {
        self.lock()
            .insert(info.question_id.clone(), Entry { info, reply });
    }

    /// Drops every pending question; their askers see no answer.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The pending questions, oldest first.
    pub(crate) fn list(&self) -> Vec<PendingQuestion> {
        let mut v: Vec<PendingQuestion> = self.lock().values().map(|e| e.info.clone()).collect();
        v.sort_by(|a, b| {
            a.asked_at
                .cmp(&b.asked_at)
                .then(a.question_id.cmp(&b.question_id))
        });
        v
    }
}

/// A question that was asked and may still be pending. Dropping it withdraws the question.
pub struct AskedQuestion {
    hub: Hub,
    /// The question's id, as the `question` event carried it.
    pub question_id: String,
    rx: Option<oneshot::Receiver<Answer>>,
}

impl AskedQuestion {
    pub(crate) fn new(hub: Hub, question_id: String, rx: oneshot::Receiver<Answer>) -> Self {
        AskedQuestion {
            hub,
            question_id,
            rx: Some(rx),
        }
    }

    /// Waits for the first answer. `None` when `timeout` passes or `cancel` fires first; the question is then
    /// withdrawn and `question.expired {question_id}` is published on its channel.
    pub async fn answer(mut self, timeout: Duration, cancel: &CancellationToken) -> Option<Answer> {
        let rx = self.rx.take()?;
        tokio::select! {
            r = rx => r.ok(),
            () = tokio::time::sleep(timeout) => None,
            () = cancel.cancelled() => None,
        }
    }
}

impl Drop for AskedQuestion {
    fn drop(&mut self) {
        let Some((info, _)) = self.hub.questions().take(&self.question_id) else {
            return;
        };
        let hub = self.hub.clone();
        let ev = NewEvent::new(
            info.channel,
            "question.expired",
            json!({"question_id": info.question_id}),
        );
        if let (Ok(draft), Ok(rt)) = (
            EventDraft::new(ev, Source::System),
            tokio::runtime::Handle::try_current(),
        ) {
            rt.spawn(async move {
                if let Err(e) = hub.commit(draft).await {
                    tracing::debug!(error = %e, "could not publish question.expired");
                }
            });
        }
    }
}
