//! The HTTP side: webhook ingest, health, readiness and metrics.

pub mod api;
pub mod argocd;
pub mod credentials;
mod health;
pub mod ingest;
mod limits;
pub mod server;
mod webhook;
mod webhook_error;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::Router;
use relay_store::PgPool;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;
use crate::secrets::SecretKey;
use credentials::CredentialCache;
use ingest::{GroupCommit, Ingestor};

/// Everything a request handler needs. Cloned for every request (axum's `State` and each
/// middleware take it by value), so it is one `Arc`: a clone is one atomic increment, not a
/// dozen plus the allocations of its strings and secrets.
#[derive(Clone, Debug)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

#[derive(Debug)]
pub struct SharedState {
    pub pool: PgPool,
    pub key: SecretKey,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Set once migrations have been applied; until then webhooks answer 503.
    pub schema_ready: Arc<AtomicBool>,
    /// Bearer token of the admin API; the API refuses everything while unset.
    pub admin_token: Option<secrecy::SecretString>,
    /// Bearer token `/metrics` asks for, when set.
    pub metrics_token: Option<secrecy::SecretString>,
    pub max_connections: usize,
    /// How far back the activity log reaches.
    pub activity_retention: Duration,
    /// Base of hook URLs shown by the admin API.
    pub public_base_url: String,
    pub ingestor: Ingestor,
    pub credentials: Arc<CredentialCache>,
    /// Bitbucket clients for the admin API's webhook registration.
    pub clients: Arc<crate::bitbucket::Clients>,
    /// Bearer token of the Argo CD plugin generator; the endpoint is off while unset.
    pub argocd_plugin_token: Option<secrecy::SecretString>,
}

/// The knobs of the HTTP side, from the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub admin_token: Option<secrecy::SecretString>,
    pub metrics_token: Option<secrecy::SecretString>,
    /// Open connections at most (`RELAY_MAX_CONNECTIONS`).
    pub max_connections: usize,
    pub activity_retention: Duration,
    pub public_base_url: String,
    /// Concurrent group-commit transactions.
    pub ingest_writers: usize,
    /// Deliveries gathered before a statement starts beside one in flight.
    pub ingest_overlap_rows: usize,
    pub cloud_urls: crate::bitbucket::CloudUrls,
    pub argocd_plugin_token: Option<secrecy::SecretString>,
}

impl AppState {
    /// Builds the state and starts the ingest writers (they stop when the state is dropped).
    pub fn new(
        pool: PgPool,
        key: SecretKey,
        metrics: Arc<Metrics>,
        settings: HttpSettings,
    ) -> Self {
        Self(Arc::new(SharedState {
            ingestor: Ingestor::start(
                pool.clone(),
                metrics.clone(),
                GroupCommit {
                    writers: settings.ingest_writers,
                    max_batch: crate::config::MAX_INGEST_BATCH,
                    overlap_rows: settings.ingest_overlap_rows,
                    // Well inside the request timeout, so a stuck database is a 503 that
                    // Bitbucket retries rather than a timeout it does not.
                    batch_timeout: (settings.request_timeout / 2)
                        .min(std::time::Duration::from_secs(5)),
                },
            ),
            credentials: Arc::new(CredentialCache::new(Duration::from_secs(5))),
            clients: Arc::new(crate::bitbucket::Clients::new(
                settings.cloud_urls,
                relay_bitbucket::ClientOptions::default(),
            )),
            pool,
            key,
            metrics,
            max_body_bytes: settings.max_body_bytes,
            request_timeout: settings.request_timeout,
            schema_ready: Arc::new(AtomicBool::new(false)),
            admin_token: settings.admin_token,
            metrics_token: settings.metrics_token,
            max_connections: settings.max_connections,
            activity_retention: settings.activity_retention,
            public_base_url: settings.public_base_url,
            argocd_plugin_token: settings.argocd_plugin_token,
        }))
    }
}

impl SharedState {
    pub fn schema_ready(&self) -> bool {
        self.schema_ready.load(Ordering::Acquire)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhook::router())
        .merge(health::router())
        // Before the admin API's catch-all under /api/v1, and outside its token check.
        .merge(argocd::router())
        .merge(api::router(state.clone()))
        .merge(crate::console::router())
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting, finishes the requests in flight
/// (at most the request timeout) and drops connections that hold none.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::ServerLimits {
        header_timeout: state.request_timeout,
        request_timeout: state.request_timeout,
        max_connections: state.max_connections,
        drain_timeout: state.request_timeout,
    };
    server::serve(listener, router(state), limits, shutdown).await
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is matched without
/// regard to case (RFC 7235).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `given` equals `expected`, in constant time.
pub fn token_matches(expected: &secrecy::SecretString, given: Option<&str>) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    given.is_some_and(|given| {
        bool::from(expected.expose_secret().as_bytes().ct_eq(given.as_bytes()))
    })
}
