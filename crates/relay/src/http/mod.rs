//! The HTTP side: webhook ingest, health, readiness and metrics.

pub mod api;
pub mod argocd;
pub mod credentials;
mod health;
pub mod ingest;
mod webhook;
mod webhook_error;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use relay_store::PgPool;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::metrics::Metrics;
use crate::secrets::SecretKey;
use credentials::CredentialCache;
use ingest::Ingestor;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub key: SecretKey,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Set once migrations have been applied; until then webhooks answer 503.
    pub schema_ready: Arc<AtomicBool>,
    /// Bearer token of the admin API; the API refuses everything while unset.
    pub admin_token: Option<secrecy::SecretString>,
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
    pub public_base_url: String,
    /// Concurrent group-commit transactions.
    pub ingest_writers: usize,
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
        Self {
            ingestor: Ingestor::start(
                pool.clone(),
                settings.ingest_writers,
                256,
                // Well inside the request timeout, so a stuck database is a 503 that
                // Bitbucket retries rather than a timeout it does not.
                (settings.request_timeout / 2).min(std::time::Duration::from_secs(5)),
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
            public_base_url: settings.public_base_url,
            argocd_plugin_token: settings.argocd_plugin_token,
        }
    }

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
        // Cuts off senders that trickle a body in; Bitbucket itself gives up after 10 s.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting and finishes in-flight requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Connection info gives the console's login limit the client's address.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
