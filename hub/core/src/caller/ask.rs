//! Questions (`ask_user`, SPEC §8): asking one (or joining it again by its key), listing the pending ones, and
//! answering. See `questions.rs` for how they are kept.

use serde_json::{Value, json};

use super::{Caller, MAX_QUESTION_CHARS};
use crate::error::{Error, Result};
use crate::hub::Published;
use crate::model::{NewEvent, check_channel};
use crate::questions::{
    Answer, Ask, AskedQuestion, PendingQuestion, QUESTIONS_CHANNEL, Via, rfc3339,
};
use crate::store::Write;

impl Caller {
    /// Asks the user a question: it is kept as pending and `question {question_id, question, options?,
    /// expires_at}` is published on `channel` (default `questions`), in one transaction. With a `key` already
    /// used on that channel, the pending question is joined, or its answer returned, instead of asking twice.
    /// [`AskedQuestion::answer`] waits for the first answer.
    ///
    /// # Errors
    /// 403 without publish on the channel; 422 for an empty or over-long question, a bad channel, key or options.
    pub async fn ask(&self, ask: Ask) -> Result<AskedQuestion> {
        let Ask {
            question,
            channel,
            timeout,
            key,
            options,
            via,
        } = ask.clone();
        if question.trim().is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::invalid(
                "question",
                format_args!("must be 1–{MAX_QUESTION_CHARS} characters"),
            ));
        }
        ask.check()?;
        let channel = channel.unwrap_or_else(|| QUESTIONS_CHANNEL.to_owned());
        check_channel("channel", &channel)?;
        let questions = self.hub.questions();
        if let Some(k) = &key {
            // The caller must still be allowed there: a key does not reach across channels it may not use.
            self.draft(NewEvent::new(channel.clone(), "question", json!({})))?;
            if let Some(q) = questions.by_key(&channel, k) {
                return Ok(AskedQuestion::waiting(self.hub.clone(), q, true));
            }
            let earlier = self
                .hub
                .reader()
                .question_by_key(channel.clone(), k.clone())
                .await?;
            if let Some(row) = earlier
                && row.state == "answered"
                && let Some(a) = row.answer
            {
                return Ok(AskedQuestion::answered(self.hub.clone(), row.info, a));
            }
        }
        let now = chrono::Utc::now();
        let expires = now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let info = PendingQuestion {
            question_id: uuid::Uuid::new_v4().to_string(),
            question,
            options,
            channel: channel.clone(),
            asked_at: rfc3339(now),
            expires_at: rfc3339(expires),
            via,
            key,
        };
        let mut data = json!({
            "question_id": info.question_id, "question": info.question, "expires_at": info.expires_at,
            "via": via.as_str(),
        });
        if let Some(o) = &info.options {
            data["options"] = json!(o);
        }
        let draft = self.draft(NewEvent::new(channel, "question", data))?;
        // Answerable, with this asker waiting, before the `question` event goes out: an answer may come back before
        // the write returns (at once from a fast client; and the PostgreSQL store answers only after its tail has
        // delivered the event). Listed only once committed.
        questions.opening(info.clone());
        let asked = AskedQuestion::waiting(self.hub.clone(), info.clone(), false);
        if let Err(e) = self
            .hub
            .write(Write::AskQuestion(info.clone(), draft))
            .await
        {
            questions.withdrawn(&info.question_id);
            return Err(e);
        }
        questions.committed(&info.question_id);
        Ok(asked)
    }

    /// Takes up a question asked earlier (an MCP client coming back with the elicited answer, or to keep waiting):
    /// waiting on it while it is pending, or with its answer once answered.
    ///
    /// # Errors
    /// 404 when it was never asked, was withdrawn, or is on a channel out of this caller's reach.
    pub async fn rejoin(&self, question_id: &str) -> Result<AskedQuestion> {
        let gone = || {
            Error::not_found(format!(
                "no question {question_id:?} to take up: never asked, or withdrawn"
            ))
        };
        if let Some(q) = self.hub.questions().peek(question_id) {
            if !self.principal.sees(&q.channel) {
                return Err(gone());
            }
            return Ok(AskedQuestion::waiting(self.hub.clone(), q, true));
        }
        let row = self
            .hub
            .reader()
            .question(question_id.to_owned())
            .await?
            .filter(|r| self.principal.sees(&r.info.channel))
            .ok_or_else(gone)?;
        match (row.state.as_str(), row.answer) {
            ("answered", Some(a)) => Ok(AskedQuestion::answered(self.hub.clone(), row.info, a)),
            // Being answered or withdrawn right now: wait for the outcome.
            ("pending", _) => Ok(AskedQuestion::waiting(self.hub.clone(), row.info, true)),
            _ => Err(gone()),
        }
    }

    /// Withdraws a pending question (`question.withdrawn {question_id, reason}`), e.g. one asked only in the IDE
    /// whose user declined to answer.
    ///
    /// # Errors
    /// 404 when it is not pending for this caller; 403 without publish on its channel.
    pub async fn withdraw(&self, question_id: &str, reason: &str) -> Result<()> {
        let q = self
            .hub
            .questions()
            .peek(question_id)
            .filter(|q| self.principal.sees(&q.channel))
            .ok_or_else(|| Error::not_found(format!("no pending question {question_id:?}")))?;
        self.draft(NewEvent::new(q.channel, "question.withdrawn", json!({})))?;
        crate::questions::withdraw(&self.hub, question_id, reason).await
    }

    /// The pending questions this caller may see, oldest first. Questions asked only in the IDE (`via: ide`) are
    /// not listed: nobody else is meant to answer them.
    pub fn questions(&self) -> Vec<PendingQuestion> {
        let mut all = self.hub.questions().list();
        all.retain(|q| q.via != Via::Ide && self.principal.sees(&q.channel));
        all
    }

    /// Answers a pending question. The first answer wins: it is kept, handed to every asker waiting on it, and
    /// published as `question.answered {question_id, answer, answered_by}` on the question's channel.
    ///
    /// # Errors
    /// 404 when no such question is pending for this caller (never asked, answered already, withdrawn, or on a
    /// channel out of its reach); 403 without publish on the question's channel.
    pub async fn answer(&self, question_id: &str, answer: Value) -> Result<Published> {
        if let Some(first) = self.done_before().await? {
            return Published::of(&first);
        }
        let gone = || {
            Error::not_found(format!(
                "no pending question {question_id:?}: never asked, answered already, or withdrawn"
            ))
        };
        let q = self
            .hub
            .questions()
            .peek(question_id)
            .filter(|q| self.principal.sees(&q.channel))
            .ok_or_else(gone)?;
        let data =
            json!({"question_id": question_id, "answer": answer, "answered_by": self.source});
        let draft = self.draft(NewEvent::new(q.channel, "question.answered", data))?;
        // Checked; now claimed, so a second answer or the deadline cannot race this one.
        self.hub.questions().claim(question_id).ok_or_else(gone)?;
        let answer = Answer {
            answer,
            answered_by: self.source,
        };
        let w = Write::AnswerQuestion {
            question_id: question_id.to_owned(),
            answer: answer.clone(),
            event: draft,
        };
        let c = match self.write(w).await {
            Ok(c) => c,
            Err(e) => {
                self.hub.questions().unclaim(question_id);
                return Err(e);
            }
        };
        self.hub.questions().answered(question_id, &answer);
        Published::of(&c)
    }
}
