//! Questions an IDE agent asks its user (`ask_user`), and their answers. A question is pending in memory while
//! its asker waits; the first answer, from any transport, wins and is handed to the asker. Both ends are also
//! events (`question` and `answer` on the question's channel) so every client and the log see them.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::model::Source;

/// A question waiting for its answer.
#[derive(Debug, Clone, Serialize)]
pub struct PendingQuestion {
    pub question_id: String,
    pub question: String,
    pub channel: String,
    pub asked_at: String,
}

/// The first answer to a question.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub answer: Value,
    pub answered_by: Source,
}

struct Entry {
    info: PendingQuestion,
    reply: oneshot::Sender<Answer>,
}

/// The pending questions of this hub.
#[derive(Default)]
pub struct Questions {
    pending: Mutex<HashMap<String, Entry>>,
}

impl Questions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a question; the receiver resolves with its first answer.
    pub fn open(&self, info: PendingQuestion) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .insert(info.question_id.clone(), Entry { info, reply: tx });
        rx
    }

    /// Takes the question out of the pending set, if it is still there. Exactly one caller gets `Some`.
    pub fn take(&self, question_id: &str) -> Option<(PendingQuestion, oneshot::Sender<Answer>)> {
        self.lock().remove(question_id).map(|e| (e.info, e.reply))
    }

    /// Puts back a question whose answer could not be published.
    pub fn restore(&self, info: PendingQuestion, reply: oneshot::Sender<Answer>) {
        self.lock()
            .insert(info.question_id.clone(), Entry { info, reply });
    }

    /// Drops every pending question; their askers see no answer.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The pending questions, oldest first.
    pub fn list(&self) -> Vec<PendingQuestion> {
        let mut v: Vec<PendingQuestion> = self.lock().values().map(|e| e.info.clone()).collect();
        v.sort_by(|a, b| {
            a.asked_at
                .cmp(&b.asked_at)
                .then(a.question_id.cmp(&b.question_id))
        });
        v
    }
}
