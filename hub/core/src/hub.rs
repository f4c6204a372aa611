//! [`Hub`]: the one handle every transport holds. It owns the store and the bus, and is where agent mutations,
//! publishes, questions and retention meet.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusConfig, ClientInfo, Session};
use crate::error::{Error, Result};
use crate::model::{Agent, AgentPatch, Event, EventDraft, NewAgent, Pattern, Source};
use crate::questions::{Answer, PendingQuestion, Questions};
use crate::store::{AgentQuery, Committed, Retention, Store, Write};

/// The channel questions and answers travel on unless a question names another.
pub const QUESTIONS_CHANNEL: &str = "questions";

/// Core settings; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub data_dir: PathBuf,
    pub retention: Retention,
    /// How often retention runs.
    pub retention_every: Duration,
    pub bus: BusConfig,
}

impl HubConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            retention: Retention::default(),
            retention_every: Duration::from_secs(60),
            bus: BusConfig::default(),
        }
    }
}

/// A publish's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub seq: u64,
    /// How many subscribers it was handed to.
    pub delivered: usize,
}

/// Cheap-to-clone handle on the running hub core.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    questions: Questions,
    store: Store,
    bus: Bus,
    config: HubConfig,
    started: Instant,
}

impl Hub {
    /// Opens the database in `config.data_dir` and starts the writer.
    ///
    /// # Errors
    /// `Internal` if the database cannot be opened or migrated.
    pub async fn open(config: HubConfig) -> Result<Self> {
        let dir = config.data_dir.clone();
        let bus_cfg = config.bus;
        // Opening runs migrations and may fsync: keep it off the async threads.
        let (store, bus) = tokio::task::spawn_blocking(move || -> Result<(Store, Bus)> {
            let bus = Bus::new(bus_cfg);
            let store = Store::open(&dir, Arc::new(bus.clone()))?;
            bus.attach(store.clone());
            Ok((store, bus))
        })
        .await
        .map_err(Error::internal)??;
        let hub = Hub {
            inner: Arc::new(HubInner {
                questions: Questions::default(),
                store,
                bus,
                config,
                started: Instant::now(),
            }),
        };
        Ok(hub)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }
    pub fn epoch(&self) -> &str {
        self.inner.store.epoch()
    }
    pub fn last_seq(&self) -> u64 {
        self.inner.bus.last_seq()
    }
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Registers a connection on the bus.
    pub fn connect(&self, info: ClientInfo) -> Session {
        self.inner.bus.connect(info)
    }

    /// # Errors
    /// 422 naming the bad field.
    pub async fn create_agent(&self, new: NewAgent, source: Source) -> Result<Agent> {
        let c = self
            .inner
            .store
            .write(Write::CreateAgent(new, source))
            .await?;
        c.agent
            .ok_or_else(|| Error::internal("create returned no agent"))
    }

    /// Applies a merge-patch. `expected_version` (from `If-Match`) wins over the body's `expected_version`.
    ///
    /// # Errors
    /// 404 unknown id, 412 version mismatch, 422 bad field.
    pub async fn update_agent(
        &self,
        id: &str,
        patch: AgentPatch,
        expected_version: Option<i64>,
        source: Source,
    ) -> Result<Agent> {
        let w = Write::UpdateAgent {
            id: id.to_owned(),
            patch,
            expected_version,
            source,
        };
        let c = self.inner.store.write(w).await?;
        c.agent
            .ok_or_else(|| Error::internal("update returned no agent"))
    }

    /// Deletes an agent and returns it as it was.
    ///
    /// # Errors
    /// 404 unknown id.
    pub async fn delete_agent(&self, id: &str, source: Source) -> Result<Agent> {
        let c = self
            .inner
            .store
            .write(Write::DeleteAgent {
                id: id.to_owned(),
                source,
            })
            .await?;
        c.agent
            .ok_or_else(|| Error::internal("delete returned no agent"))
    }

    /// # Errors
    /// 404 unknown id.
    pub async fn get_agent(&self, id: &str) -> Result<Agent> {
        self.inner
            .store
            .get_agent(id.to_owned())
            .await?
            .ok_or_else(|| Error::not_found(format!("no agent with id {id}")))
    }

    /// # Errors
    /// 422 for a bad cursor or limit.
    pub async fn list_agents(&self, q: AgentQuery) -> Result<(Vec<Agent>, Option<String>)> {
        if q.limit == 0 || q.limit > 500 {
            return Err(Error::invalid("limit", "must be 1–500"));
        }
        self.inner.store.list_agents(q).await
    }

    /// Commits one event and hands it to subscribers.
    ///
    /// # Errors
    /// `Unavailable` while shutting down; `Internal` on a database fault.
    pub async fn publish(&self, draft: EventDraft) -> Result<Published> {
        let c: Committed = self.inner.store.write(Write::Publish(vec![draft])).await?;
        let ev = c
            .events
            .first()
            .ok_or_else(|| Error::internal("publish returned no event"))?;
        Ok(Published {
            seq: ev.seq(),
            delivered: c.delivered.first().copied().unwrap_or(0),
        })
    }

    /// Logged events after `since` matching `pattern`, oldest first; with no `since`, the newest `limit`.
    /// Without `private_ok`, `private-`/`presence-` channels are left out (as the bus does for live events).
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub async fn events(
        &self,
        pattern: Option<Pattern>,
        since: Option<u64>,
        limit: usize,
        private_ok: bool,
    ) -> Result<Vec<Event>> {
        let mut events = match since {
            Some(s) => self.inner.store.events(pattern, s, None, limit).await?,
            None => self.inner.store.latest_events(pattern, limit).await?,
        };
        if !private_ok {
            events.retain(|e| !crate::model::is_private(e.channel()));
        }
        Ok(events)
    }

    /// Asks the user a question: registers it as pending and publishes `question {question_id, question}` on
    /// `channel` (default `questions`). [`AskedQuestion::answer`] waits for the first answer.
    ///
    /// # Errors
    /// 422 for an empty or over-long question or a bad channel.
    pub async fn ask(
        &self,
        question: String,
        channel: Option<String>,
        source: Source,
    ) -> Result<AskedQuestion> {
        let n = question.chars().count();
        if question.trim().is_empty() || n > 4000 {
            return Err(Error::invalid("question", "must be 1–4000 characters"));
        }
        let channel = channel.unwrap_or_else(|| QUESTIONS_CHANNEL.to_owned());
        crate::model::check_channel("channel", &channel)?;
        let question_id = uuid::Uuid::new_v4().to_string();
        let info = PendingQuestion {
            question_id: question_id.clone(),
            question: question.clone(),
            channel: channel.clone(),
            asked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let data = json!({"question_id": question_id, "question": question});
        let draft = EventDraft::new(channel, "question", data, source)?;
        // Registered before it is published, so an answer can never arrive for an unknown question.
        let rx = self.inner.questions.open(info);
        if let Err(e) = self.publish(draft).await {
            self.inner.questions.take(&question_id);
            return Err(e);
        }
        Ok(AskedQuestion {
            hub: self.clone(),
            question_id,
            rx: Some(rx),
        })
    }

    /// The questions waiting for an answer, oldest first.
    pub fn pending_questions(&self) -> Vec<PendingQuestion> {
        self.inner.questions.list()
    }

    /// Answers a pending question. The first answer wins: it is handed to the asker and published as `answer
    /// {question_id, answer, answered_by}` on the question's channel.
    ///
    /// # Errors
    /// 404 when no such question is pending (never asked, answered already, or expired).
    pub async fn answer_question(
        &self,
        question_id: &str,
        answer: Value,
        answered_by: Source,
    ) -> Result<Published> {
        let Some((info, reply)) = self.inner.questions.take(question_id) else {
            return Err(Error::not_found(format!(
                "no pending question {question_id:?}: never asked, answered already, or expired"
            )));
        };
        let data =
            json!({"question_id": question_id, "answer": answer, "answered_by": answered_by});
        let published = self
            .publish(EventDraft::new(
                info.channel.clone(),
                "answer",
                data,
                answered_by,
            )?)
            .await;
        match published {
            Ok(p) => {
                // The asker may have given up in the meantime; the answer is logged either way.
                let _ = reply.send(Answer {
                    answer,
                    answered_by,
                });
                Ok(p)
            }
            Err(e) => {
                self.inner.questions.restore(info, reply);
                Err(e)
            }
        }
    }

    /// Runs retention once.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub async fn prune(&self) -> Result<u64> {
        Ok(self
            .inner
            .store
            .write(Write::Prune(self.inner.config.retention))
            .await?
            .pruned)
    }

    /// Runs retention now and then every `retention_every` until `stop` is cancelled.
    pub fn spawn_retention(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.inner.config.retention_every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => match hub.prune().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(pruned = n, "retention removed old events"),
                        Err(e) => tracing::warn!(error = %e, "retention failed"),
                    },
                }
            }
        })
    }

    /// Commits every queued write and stops the writer. Later writes fail with `Unavailable`.
    pub async fn shutdown(&self) {
        // Nobody will answer now: let waiting askers go.
        self.inner.questions.clear();
        self.inner.store.shutdown().await;
    }
}

/// A question that was asked and may still be pending. Dropping it withdraws the question.
pub struct AskedQuestion {
    hub: Hub,
    pub question_id: String,
    rx: Option<tokio::sync::oneshot::Receiver<Answer>>,
}

impl AskedQuestion {
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
        let Some((info, _)) = self.hub.inner.questions.take(&self.question_id) else {
            return;
        };
        let hub = self.hub.clone();
        let data = json!({"question_id": info.question_id});
        if let (Ok(draft), Ok(rt)) = (
            EventDraft::new(info.channel, "question.expired", data, Source::System),
            tokio::runtime::Handle::try_current(),
        ) {
            rt.spawn(async move {
                if let Err(e) = hub.publish(draft).await {
                    tracing::debug!(error = %e, "could not publish question.expired");
                }
            });
        }
    }
}
