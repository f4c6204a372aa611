//! Building the router apart from binding it ([`router`]), and running the hub ([`start`] → [`RunningHub`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use switchboard_core::limits::MAX_BODY_BYTES;
use switchboard_core::{Hub, HubConfig, Secret};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::lock::{DataDirLock, LockError};
use crate::peer::Peer;
use crate::security::{Policy, guard, ip_limiter};
use crate::state::{AppState, StateInner};
use crate::{github, metrics, pusher, rest, socketio, sse, ws};

/// Why the hub did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding off loopback without `--require-token`.
    #[error(
        "refusing to bind {0} without token auth: anyone on that network could drive your agents. Pass --require-token (clients then send the token from <data dir>/token) or bind 127.0.0.1"
    )]
    InsecureBind(std::net::IpAddr),
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// What we tried to bind.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The database or token file could not be opened.
    #[error("cannot open the data dir: {0}")]
    Core(#[from] switchboard_core::Error),
    /// Another hub runs on this data dir (its pid and URL are in the error), or its lock cannot be taken.
    #[error("{0}")]
    DataDir(#[from] LockError),
}

async fn count_requests(State(n): State<Arc<AtomicU64>>, req: Request, next: Next) -> Response {
    n.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

/// Every route, plus `extra` (the MCP endpoints), behind the §10 guard, CORS and the body limit.
pub fn router(state: AppState, extra: Router) -> Router {
    let api = Router::new()
        .route("/health", get(rest::health))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/agents",
            get(rest::list_agents).post(rest::create_agent),
        )
        .route(
            "/api/agents/{id}",
            get(rest::get_agent)
                .patch(rest::update_agent)
                .delete(rest::delete_agent),
        )
        .route("/api/agents/batch", post(rest::create_agents))
        .route(
            "/api/events",
            get(rest::list_events).post(rest::publish_event),
        )
        .route("/api/events/export", get(rest::export_events))
        .route("/api/events/{seq}/replay", post(rest::replay_event))
        .route("/api/webhooks/github", post(github::delivery))
        .route(
            "/api/watches",
            get(rest::list_watches)
                .post(rest::add_watch)
                .delete(rest::remove_watch),
        )
        .route("/api/channels", get(rest::list_channels))
        .route("/api/channels/{name}", get(rest::get_channel))
        .route("/api/clients", get(rest::list_clients))
        .route("/api/questions", get(rest::list_questions))
        .route("/api/questions/{id}/answer", post(rest::answer_question))
        .route("/api/dev/webhook", post(rest::dev_webhook))
        .route("/api/dev/trigger", post(rest::dev_trigger))
        .route("/api/dev/events", get(sse::dev_events))
        .route("/api/internal/notify", post(rest::internal_notify))
        .route("/events", get(sse::events))
        .route("/ws", get(ws::ws_root))
        .route("/ws/{client_id}", get(ws::ws_named))
        .route("/api/connect", get(rest::connect_info))
        .route("/app/{key}", get(pusher::connect))
        .route("/apps/{app_id}/events", post(pusher::api::events))
        .route(
            "/apps/{app_id}/batch_events",
            post(pusher::api::batch_events),
        )
        .route("/apps/{app_id}/channels", get(pusher::api::channels))
        .route("/apps/{app_id}/channels/{name}", get(pusher::api::channel))
        .route(
            "/apps/{app_id}/channels/{name}/users",
            get(pusher::api::channel_users),
        )
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(pusher::api::terminate_connections),
        )
        .route("/pusher/auth", post(pusher::api::channel_auth))
        .route("/pusher/user-auth", post(pusher::api::user_auth))
        .route("/api/pusher/config", get(pusher::api::config))
        .merge(crate::ui::routes())
        .fallback(rest::not_found)
        .with_state(state.clone())
        .merge(extra);
    let counter = state.http_requests.clone();
    // Inside the guard: the engine.io handshake is Host- and Origin-checked, and its principal reaches the
    // Socket.IO connect through the request's extensions.
    api.layer(socketio::layer(state.clone()))
        .layer(middleware::from_fn(crate::idempotency::layer))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(state.policy.cors())
        .layer(middleware::from_fn_with_state(counter, count_requests))
}

/// A hub that is listening.
pub struct RunningHub {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The core.
    pub hub: Hub,
    /// What every handler shares.
    pub state: AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    retention: tokio::task::JoinHandle<()>,
    /// Held until the hub has stopped: one hub per data dir.
    lock: DataDirLock,
}

/// Opens the data dir, binds and starts serving in the background.
///
/// # Errors
/// [`StartError`] when binding off loopback without `require_token`, when the port is taken, or when the data
/// dir cannot be opened.
pub async fn start(
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<RunningHub, StartError> {
    start_with(config, shutdown, |_| Router::new()).await
}

/// [`start`], with extra routes built from the running state (the app mounts MCP here). They sit behind the same
/// Host, Origin and token checks as every other route.
///
/// # Errors
/// As [`start`].
pub async fn start_with(
    config: ServerConfig,
    shutdown: CancellationToken,
    extra: impl FnOnce(&AppState) -> Router,
) -> Result<RunningHub, StartError> {
    if !config.bind.is_loopback() && !config.require_token {
        return Err(StartError::InsecureBind(config.bind));
    }
    // Before the store opens: a second hub on this data dir would broadcast only its own writes.
    let mut lock = DataDirLock::acquire(&config.data_dir)?;
    let mut hub_cfg = HubConfig::new(&config.data_dir);
    hub_cfg.store = config.store.clone();
    hub_cfg.retention = config.retention;
    hub_cfg.require_token = config.require_token;
    hub_cfg.bus.queue_capacity = config.queue_capacity.max(1);
    hub_cfg.bus.max_connections = config.max_connections;
    hub_cfg.pusher = config.pusher.clone();
    hub_cfg.github_secret = config.github_secret.clone().map(Secret::new);
    hub_cfg.watch = config.watch.clone();
    let hub = Hub::open(hub_cfg).await?;
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let state = AppState::new(StateInner {
        hub: hub.clone(),
        policy: Arc::new(Policy::new(&config)),
        ip_limiter: config.rate_limit.and_then(ip_limiter),
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
        http_requests: Arc::new(AtomicU64::new(0)),
        url: format!("http://{addr}"),
    });
    if let Err(e) = lock.set_url(&state.url) {
        tracing::warn!(error = %e, "could not write the URL into the data dir's lock file");
    }
    let extra = extra(&state);
    let app = router(state.clone(), extra).into_make_service_with_connect_info::<Peer>();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(crate::peer::Listener::new(listener), app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let retention = hub.spawn_retention(shutdown.child_token());
    tracing::info!(
        %addr,
        require_token = state.config.require_token,
        store = %state.config.store.describe(),
        "hub started"
    );
    Ok(RunningHub {
        addr,
        hub,
        state,
        server,
        retention,
        lock,
    })
}

impl RunningHub {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        self.state.url.clone()
    }

    /// Waits for the shutdown token, then closes sockets (1001), finishes in-flight requests, commits every queued
    /// write and stops the writer.
    pub async fn wait(self) {
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server failed"),
            Err(e) => tracing::error!(error = %e, "server task failed"),
        }
        self.state.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sockets did not close within 10 s");
        }
        let _ = self.retention.await;
        self.hub.shutdown().await;
        drop(self.lock);
        tracing::info!("hub stopped");
    }
}
