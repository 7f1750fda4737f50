//! Wiring: the store, the HTTP server and the background tasks, and a
//! graceful shutdown that lets in-flight work finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, Response, header};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::access::{AllowedHosts, Authenticator};
use crate::api;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::dispatch::client::WebhookClient;
use crate::domain::auth::{self, Role, Tenant};
use crate::instance::{self, Liveness};
use crate::retention;
use crate::scheduler::Scheduler;
use crate::server::{self, Limits};
use crate::state::AppState;
use crate::store::{self, DynStore, NewToken};
use crate::wakeup::Wakeups;

/// The address a receiver on this machine reaches a listener at: a
/// wildcard one is reached at loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// A started service.
pub struct RunningApp {
    pub local_addr: SocketAddr,
    pub store: DynStore,
    /// This process's id as an instance (and lease owner).
    pub instance_id: String,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// The heartbeat outlives the other tasks: a draining instance still
    /// owns its leases until it has released them.
    heartbeat: tokio::task::JoinHandle<()>,
    stop_heartbeat: CancellationToken,
    config: Config,
}

/// Connects the store (applying migrations), binds the listener and
/// starts serving.
pub async fn start(config: Config) -> anyhow::Result<RunningApp> {
    let wakeups = Arc::new(Wakeups::new());
    let key = crate::keyfile::load(
        config.store.encryption_key.as_deref(),
        &config.store.database_url,
    )?;
    let store = store::connect_with(
        &config.store.database_url,
        wakeups.clone(),
        key,
        config.quotas(),
    )
    .await
    .with_context(|| {
        format!(
            "opening the store at {}",
            redact(&config.store.database_url)
        )
    })?;
    if let Some(token) = &config.root_token {
        register_root_token(&store, token).await?;
    }
    let listener = TcpListener::bind((config.listen.host.as_str(), config.listen.port))
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let loopback = local_addr.ip().is_loopback();
    let tokens = store.tokens().await?;
    auth::may_start(config.auth, loopback, tokens).map_err(anyhow::Error::msg)?;
    let tokens_required = auth::tokens_required(config.auth, loopback, tokens);
    if config.auth == auth::AuthMode::None && tokens != auth::Tokens::NoneMade {
        tracing::warn!(
            "--auth none: the API is open to anyone on this host although tokens were made; \
             start without it to require them again"
        );
    }
    let network_policy = config.network_policy(loopback, tokens_required);
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let instance_id = instance::new_id();
    store
        .register_instance(&instance_id, instance::VERSION)
        .await
        .context("registering this instance")?;
    let liveness = Arc::new(Liveness::new(config.instance_timeout()));
    let stop_heartbeat = CancellationToken::new();
    let heartbeat = tokio::spawn(instance::heartbeat(
        store.clone(),
        instance_id.clone(),
        liveness.clone(),
        stop_heartbeat.clone(),
    ));

    crate::dispatch::client::install_crypto_provider();
    let metrics =
        Arc::new(crate::metrics::Metrics::new().with_job_series_max(config.max_job_metrics));
    let state = AppState {
        webhooks: WebhookClient::new(network_policy.clone(), 16)?,
        streams: Arc::new(crate::streams::StreamLimits::new(
            config.max_streams_per_token,
            config.max_streams_per_tenant,
        )),
        metrics: metrics.clone(),
        pings: Arc::default(),
        signing_secret_default: config.signing_secret_default.clone(),
        cookie_secure: config.cookie_secure,
        wakeups: wakeups.clone(),
        shutdown: shutdown.clone(),
        store: store.clone(),
        network_policy: network_policy.clone(),
        auth: Arc::new(Authenticator::new(store.clone(), config.auth, loopback)),
        allowed_hosts: Arc::new(AllowedHosts::new(
            &config.listen.host,
            &config.allowed_hosts,
        )),
    };
    let router = router(state);
    let limits = Limits {
        max_connections: config.max_connections as usize,
        ..Limits::default()
    };
    tasks.spawn(server::serve(listener, router, limits, shutdown.clone()));
    if network_policy.waits_for_tokens() {
        tasks.spawn(crate::access::tighten_targets_once_tokens_are_made(
            store.clone(),
            network_policy.clone(),
            shutdown.clone(),
        ));
    }

    // Other instances' notifications: for the scheduler, the dispatcher
    // and the event streams.
    if let Some(listener) = store.spawn_listener(shutdown.clone()) {
        tasks.spawn(async move {
            let _ = listener.await;
        });
    }
    if !config.no_scheduler {
        let scheduler = Scheduler {
            store: store.clone(),
            wakeups: wakeups.clone(),
            poll_interval: config.poll_interval(),
            lookahead: config.lookahead(),
            metrics: metrics.clone(),
        };
        tasks.spawn(scheduler.run(shutdown.clone()));
        let flows = crate::flow_pass::FlowPass {
            store: store.clone(),
            wakeups: wakeups.clone(),
            poll_interval: config.poll_interval(),
        };
        tasks.spawn(flows.run(shutdown.clone()));
        tasks.spawn(crate::watchdog::run(
            store.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        let kept = retention::Retention {
            runs: config.run_retention,
            events: config.event_retention,
            audit: config.audit_retention,
        };
        tasks.spawn(retention::run(store.clone(), kept, shutdown.clone()));
    }
    if !config.no_dispatcher {
        let public_url = match &config.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_string(),
            None => format!("http://{}", reachable(local_addr)),
        };
        let dispatcher = Dispatcher {
            public_url,
            store: store.clone(),
            wakeups: wakeups.clone(),
            client: WebhookClient::new(network_policy.clone(), config.max_in_flight as usize)?,
            owner: instance_id.clone(),
            liveness,
            instance_timeout: config.instance_timeout(),
            max_in_flight: config.max_in_flight as usize,
            max_in_flight_per_host: config.max_in_flight_per_host as usize,
            max_in_flight_per_tenant: config.max_in_flight_per_tenant() as usize,
            lease_margin: Duration::from_secs(config.lease_margin_s),
            poll_interval: config.poll_interval(),
            drain_timeout: config.drain_timeout(),
            metrics: metrics.clone(),
        };
        tasks.spawn(dispatcher.run(shutdown.clone()));
    }

    tracing::info!(
        instance = %instance_id,
        listen = %local_addr,
        store = store.backend(),
        targets = %network_policy,
        auth = %config.auth,
        tokens_required,
        scheduler = !config.no_scheduler,
        dispatcher = !config.no_dispatcher,
        "cronhook started; API docs at http://{local_addr}/docs"
    );
    Ok(RunningApp {
        local_addr,
        store,
        instance_id,
        shutdown,
        tasks,
        heartbeat,
        stop_heartbeat,
        config,
    })
}

impl RunningApp {
    /// Stops accepting work and waits for in-flight requests and tasks,
    /// at most the shutdown timeout.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        self.shutdown.cancel();
        let deadline = self.config.shutdown_timeout();
        let drained = tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                timeout_s = deadline.as_secs(),
                "shutdown timeout reached; stopping"
            );
            self.tasks.abort_all();
        }
        // Leases released: the instance leaves the cluster.
        self.stop_heartbeat.cancel();
        let _ = self.heartbeat.await;
        if let Err(e) = self.store.deregister_instance(&self.instance_id).await {
            tracing::warn!(error = %e, "deregistering this instance failed; it will look dead to the others");
        }
        tracing::info!("stopped");
    }

    /// Stops every task at once, without draining or releasing anything:
    /// what a crash does (for tests of crash safety).
    pub fn abort(mut self) {
        self.tasks.abort_all();
        self.tasks.detach_all();
        self.heartbeat.abort();
    }

    /// A token that is cancelled when the service shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Registers `CRONHOOK_ROOT_TOKEN` as a root token on tenant `default`
/// (its hash, like any token), and revokes the one an earlier value
/// registered: changing the variable rotates the token.
async fn register_root_token(store: &DynStore, token: &str) -> anyhow::Result<()> {
    const NAME: &str = "CRONHOOK_ROOT_TOKEN";
    if !auth::is_token(token) {
        anyhow::bail!(
            "{NAME} must be a token: `chk_` and 43 base64url characters (make one with `cronhook token generate`)"
        );
    }
    let hash = auth::token_hash(token);
    let id = match store.find_token(&hash).await? {
        Some(found) if found.role == Role::Root => found.id,
        Some(found) => anyhow::bail!(
            "{NAME} is already registered as token {} with role {}, not root",
            found.id,
            found.role
        ),
        None => {
            let made = store
                .create_token(&NewToken {
                    id: auth::generate_token_id(),
                    name: Some(NAME.to_string()),
                    tenant: Tenant::default_tenant(),
                    role: Role::Root,
                    scopes: Vec::new(),
                    hash,
                })
                .await;
            match made {
                Ok(made) => {
                    tracing::info!(token = %made.id, "registered the root token of {NAME}");
                    made.id
                }
                // Another instance registered it meanwhile, or it was
                // revoked: a revoked token stays revoked.
                Err(store::StoreError::Conflict(_)) => {
                    if store.find_token(&auth::token_hash(token)).await?.is_none() {
                        tracing::warn!(
                            "{NAME} was revoked and stays revoked: set a new value (`cronhook token generate`)"
                        );
                    }
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    for earlier in store.list_tokens().await? {
        if earlier.name.as_deref() == Some(NAME) && earlier.id != id && earlier.revoked_at.is_none()
        {
            store.revoke_token(&earlier.id).await?;
            tracing::info!(token = %earlier.id, "revoked the root token of an earlier {NAME}");
        }
    }
    Ok(())
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Waits for SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives
/// while the service is still starting is not lost (and does not kill it
/// ungracefully).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        {
            let (mut terminate, mut interrupt) = (
                terminate.expect("installing the SIGTERM handler"),
                interrupt.expect("installing the SIGINT handler"),
            );
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application: the API and the dashboard, behind one
/// guard (DESIGN.md §8), one request count and one request log.
pub fn router(state: AppState) -> Router {
    api::routes()
        .merge(crate::ui::router())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::guard::guard,
        ))
        // Outside the guard: its refusals are recorded too (§11.9).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::audit::acting,
        ))
        // Answers carry jobs, runs and tokens, refusals included: no cache
        // keeps them (unless a route says otherwise, as the dashboard's
        // assets do), and no browser reads them as what they do not say.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::count_requests,
        ))
        .layer(DefaultBodyLimit::max(api::MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %request_id,
                    )
                })
                .on_request(())
                .on_response(|response: &Response<_>, latency: Duration, _span: &Span| {
                    let status = response.status().as_u16();
                    let latency_ms = latency.as_secs_f64() * 1e3;
                    if response.extensions().get::<api::QuietLog>().is_some() {
                        tracing::debug!(status, latency_ms, "request");
                    } else {
                        tracing::info!(status, latency_ms, "request");
                    }
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://cronhook.db"), "sqlite://cronhook.db");
    }
}
