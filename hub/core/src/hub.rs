//! [`Hub`]: the handle the app holds. It opens the data dir (database and token), authenticates callers, and
//! hands out a [`Caller`] for each one; every operation that reads or changes state is on the caller, checked
//! there. What stays here is the hub's own business: its status, retention and shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Principal, Secret, load_or_create_token};
use crate::bus::{Bus, BusConfig, BusStats, ChannelSnapshot};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::idempotency::InFlight;
use crate::model::{EventDraft, Source};
use crate::presence::Presence;
use crate::pusher::{PusherApp, PusherConfig};
use crate::questions::Questions;
use crate::store::{Committed, LogWriter, Reader, Retention, StoreConfig, Write};
use crate::watcher::Watcher;

/// Core settings; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where `switchboard.db` (with the default store) and `token` live.
    pub data_dir: PathBuf,
    /// Which database holds agents and the log: the SQLite file in `data_dir`, or a shared PostgreSQL.
    pub store: StoreConfig,
    /// What the log keeps.
    pub retention: Retention,
    /// How often retention runs (10 s by default: often enough that a run has little to prune, so it never holds
    /// the writer up for long).
    pub retention_every: Duration,
    /// Queue bound and connection cap.
    pub bus: BusConfig,
    /// Every caller must present the token or a JWT signed with it.
    pub require_token: bool,
    /// The Pusher app's credentials; what is absent comes from `<data dir>/pusher.json`.
    pub pusher: PusherConfig,
    /// The GitHub webhook secret; without one every delivery is refused.
    pub github_secret: Option<Secret>,
    /// Roots the file watcher follows from the start, besides those kept in the database.
    pub watch: Vec<PathBuf>,
}

impl HubConfig {
    /// The defaults, over `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store: StoreConfig::default(),
            retention: Retention::default(),
            retention_every: Duration::from_secs(10),
            bus: BusConfig::default(),
            require_token: false,
            pusher: PusherConfig::default(),
            github_secret: None,
            watch: Vec::new(),
        }
    }
}

/// A publish's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// The event's position in the log.
    pub seq: u64,
    /// How many subscribers it was handed to.
    pub delivered: usize,
}

impl Published {
    /// The outcome of a write that published (at least) one event. A keyed write done before reports its first
    /// seq, delivered to nobody now.
    pub(crate) fn of(c: &Committed) -> Result<Self> {
        let seq = c
            .first_seq()
            .ok_or_else(|| Error::internal("publish returned no event"))?;
        Ok(Published {
            seq,
            delivered: c.delivered.first().copied().unwrap_or(0),
        })
    }
}

/// Cheap-to-clone handle on the running hub core.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// A handle that does not keep the hub alive, for background tasks that should end with it.
pub(crate) struct WeakHub(std::sync::Weak<HubInner>);

impl WeakHub {
    /// The hub, while somebody else still holds it.
    pub(crate) fn upgrade(&self) -> Option<Hub> {
        self.0.upgrade().map(|inner| Hub { inner })
    }
}

struct HubInner {
    questions: Questions,
    /// The `Idempotency-Key`s this hub is writing now.
    keys: InFlight,
    /// The hub's clock, as wall time at start plus tokio's monotonic time since (so tests can pause it).
    clock: (chrono::DateTime<chrono::Utc>, tokio::time::Instant),
    writer: Box<dyn LogWriter>,
    bus: Bus,
    auth: Auth,
    pusher: PusherApp,
    presence: Presence,
    watcher: Watcher,
    config: HubConfig,
    started: Instant,
}

impl Hub {
    /// Opens the store `config.store` names (creating and migrating it if needed), the token file in
    /// `config.data_dir`, and starts the writer.
    ///
    /// # Errors
    /// `Internal` if the database or the token file cannot be opened, created or migrated; `Unavailable` if
    /// PostgreSQL cannot be reached.
    pub async fn open(config: HubConfig) -> Result<Self> {
        let dir = config.data_dir.clone();
        let opened = crate::store::open(&config.store, &dir).await?;
        // Reading or creating the token and Pusher files may fsync: keep it off the async threads.
        let pusher_cfg = config.pusher.clone();
        let (token, pusher) = tokio::task::spawn_blocking(move || -> Result<_> {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::internal(format_args!("creating {}: {e}", dir.display())))?;
            let token = load_or_create_token(&dir)?;
            Ok((token, PusherApp::load_or_create(&dir, &pusher_cfg)?))
        })
        .await
        .map_err(Error::internal)??;
        let bus = Bus::new(config.bus, opened.reader.clone(), opened.last_seq);
        let writer = opened.start(Arc::new(bus.clone()))?;
        let hub = Hub {
            inner: Arc::new(HubInner {
                questions: Questions::default(),
                keys: InFlight::default(),
                clock: (chrono::Utc::now(), tokio::time::Instant::now()),
                writer,
                bus,
                auth: Auth::new(token, config.require_token),
                pusher,
                presence: Presence::default(),
                watcher: Watcher::default(),
                config,
                started: Instant::now(),
            }),
        };
        hub.inner
            .questions
            .load(hub.reader().pending_questions().await?);
        let kept = hub.reader().watch_roots().await?;
        Watcher::start(&hub, &hub.inner.config.watch, kept).await;
        Ok(hub)
    }

    /// The handle through which `principal` reads and changes the hub; what it causes is marked `source`.
    pub fn caller(&self, principal: Principal, source: Source) -> Caller {
        Caller::new(self.clone(), principal, source)
    }

    /// Turns presented credentials into a principal; see [`Auth::authenticate`].
    ///
    /// # Errors
    /// `Unauthorized` when credentials are missing in token mode, or are wrong in any mode.
    pub fn authenticate(&self, presented: Option<&str>, own_window: bool) -> Result<Principal> {
        self.inner.auth.authenticate(presented, own_window)
    }

    /// The caller of a signed Pusher HTTP API request (SPEC §7): the app's own backend, which holds the secret, so
    /// the owner; its changes are marked `pusher`.
    ///
    /// # Errors
    /// `Unauthorized` for a missing, stale or wrong signature; see [`PusherApp::verify_request`].
    pub fn pusher_api_caller(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Result<Caller> {
        let now = chrono::Utc::now().timestamp();
        self.inner
            .pusher
            .verify_request(method, path, query, body, now)?;
        Ok(self.caller(Principal::Owner, Source::Pusher))
    }

    /// The caller of a GitHub webhook delivery (SPEC §3): the signature over the raw body is the credential (GitHub
    /// cannot present the hub token), so the owner; what it publishes is marked `webhook`.
    ///
    /// # Errors
    /// `Unauthorized` when no secret is configured, or the delivery is unsigned or wrongly signed.
    pub fn github_caller(&self, body: &[u8], signature: Option<&str>) -> Result<Caller> {
        crate::github::verify(self.inner.config.github_secret.as_ref(), body, signature)?;
        Ok(self.caller(Principal::Owner, Source::Webhook))
    }

    /// The Pusher app: its id and key (public), and the secret (for the desktop window only).
    pub fn pusher(&self) -> &PusherApp {
        &self.inner.pusher
    }

    pub(crate) fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Whether every caller needs the token or a JWT.
    pub fn requires_token(&self) -> bool {
        self.inner.auth.required()
    }

    /// Where `token` (and, with the default store, `switchboard.db`) live.
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// Which database holds agents and the log.
    pub fn store(&self) -> &StoreConfig {
        &self.inner.config.store
    }

    /// The log's epoch: a random id made when the database was created.
    pub fn epoch(&self) -> &str {
        self.inner.bus.reader().epoch()
    }

    /// The newest `seq` committed and delivered.
    pub fn last_seq(&self) -> u64 {
        self.inner.bus.last_seq()
    }

    /// How long the hub has run.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Open connections, of every transport.
    pub fn connection_count(&self) -> usize {
        self.inner.bus.connection_count()
    }

    /// Open connections per transport (`ws`, `sse`, `mcp`…), sorted by transport.
    pub fn connections_by_transport(&self) -> Vec<(&'static str, usize)> {
        self.inner.bus.by_transport()
    }

    /// Bus-wide counters.
    pub fn stats(&self) -> BusStats {
        self.inner.bus.stats()
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub(crate) fn reader(&self) -> &Reader {
        self.inner.bus.reader()
    }

    /// This hub's own occupied channels that `visible` accepts, with presence members.
    pub(crate) fn local_channels(&self, visible: impl Fn(&str) -> bool) -> Vec<ChannelSnapshot> {
        let mut list = self.inner.bus.channels(visible);
        for c in &mut list {
            if c.name.starts_with("presence-") {
                c.members = Some(self.inner.presence.members(&c.name));
            }
        }
        list
    }

    pub(crate) fn questions(&self) -> &Questions {
        &self.inner.questions
    }

    pub(crate) fn downgrade(&self) -> WeakHub {
        WeakHub(Arc::downgrade(&self.inner))
    }

    pub(crate) fn watcher(&self) -> &Watcher {
        &self.inner.watcher
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// Now, by the hub's clock: the wall time when it opened, moved on by tokio's clock (which tests can pause and
    /// advance).
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let (wall, at) = self.inner.clock;
        wall + chrono::Duration::from_std(at.elapsed()).unwrap_or(chrono::Duration::zero())
    }

    pub(crate) fn keys_in_flight(&self) -> &InFlight {
        &self.inner.keys
    }

    /// Queues a write for the writer thread and waits for its commit.
    pub(crate) async fn write(&self, w: Write) -> Result<Committed> {
        self.inner.writer.write(w).await
    }

    /// Commits one checked event and hands it to subscribers.
    pub(crate) async fn commit(&self, draft: EventDraft) -> Result<Published> {
        Published::of(&self.write(Write::Publish(vec![draft])).await?)
    }

    /// Runs retention once; returns how many events it removed.
    ///
    /// # Errors
    /// `Internal` on a database fault.
    pub async fn prune(&self) -> Result<u64> {
        let r = self.inner.config.retention;
        let mut total = 0;
        // Chunk by chunk, each its own write, so other writes go on in between.
        loop {
            let n = self.write(Write::Prune(r)).await?.pruned;
            total += n;
            if n < crate::store::PRUNE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Runs retention now and then every `retention_every`, and withdraws questions past their deadline every
    /// second (those whose askers are gone, or that were pending across a restart), until `stop` is cancelled.
    /// With a store other hubs share, it also shares this hub's occupied channels every second.
    pub fn spawn_retention(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.inner.config.retention_every);
            let mut questions = tokio::time::interval(Duration::from_secs(1));
            let mut share = tokio::time::interval(Duration::from_secs(1));
            let shared = hub.reader().shared();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = share.tick(), if shared => {
                        if let Err(e) = hub.reader().share(hub.local_channels(|_| true)).await {
                            tracing::debug!(error = %e, "could not share this hub's channel counts");
                        }
                    }
                    _ = questions.tick() => crate::questions::expire(&hub).await,
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
        // Let waiting askers go; their questions stay pending in the database, for after a restart.
        self.inner.questions.release();
        // Drops every watch, which ends the task that publishes file events (and its handle on the hub).
        self.inner.watcher.stop();
        self.reader().unshare().await;
        self.inner.writer.shutdown().await;
    }
}
