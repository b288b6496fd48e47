//! The running relay: HTTP, delivery processors, job runners, the resync and the gauges
//! sampler, started the same way by `relay serve` and by the end-to-end tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use relay_store::{PgPool, StoreError};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::http::{self, AppState, HttpSettings};
use crate::metrics::Metrics;
use crate::secrets::{SecretError, SecretKey};
use crate::worker::jobs::{Runner, RunnerConfig};
use crate::worker::{resync, sampler, sweep, Processor, ProcessorConfig};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A relay with its listener bound and its state built, not yet serving.
pub struct Application {
    config: Config,
    state: AppState,
    listener: TcpListener,
}

impl Application {
    /// Connects to `DATABASE_URL` (lazily: the relay starts while PostgreSQL is down and
    /// reports not-ready) and binds `RELAY_LISTEN`.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let pool = relay_store::connect(
            config.require_database_url()?.expose_secret(),
            &relay_store::PoolOptions {
                max_connections: config.db_max_connections,
                acquire_timeout: config.db_acquire_timeout,
            },
        )?;
        Self::build_with_pool(config, pool).await
    }

    /// Same as [`Application::build`] on a pool the caller made (the tests' databases).
    pub async fn build_with_pool(config: Config, pool: PgPool) -> Result<Self, AppError> {
        let key = SecretKey::from_config(config.secret_key.as_ref())?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| AppError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let settings = HttpSettings {
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            admin_token: config.admin_token.clone(),
            metrics_token: config.metrics_token.clone(),
            max_connections: config.max_connections,
            activity_retention: config.activity_retention,
            public_base_url: config.public_base_url(),
            ingest_writers: config.ingest_writers,
            ingest_overlap_rows: config.ingest_overlap_rows,
            cloud_urls: config.cloud_urls(),
            argocd_plugin_token: config.argocd_plugin_token.clone(),
        };
        let state = AppState::new(pool, key, Arc::new(Metrics::new()), settings);
        Ok(Self {
            config,
            state,
            listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled: migrations are applied (retried until the
    /// database is there), then the background workers start. On shutdown the HTTP server
    /// drains first, then every worker finishes what it holds.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let Self {
            config,
            state,
            listener,
        } = self;
        let workers = tokio::spawn(run_workers(config, state.clone(), shutdown.clone()));
        let stopped = shutdown.clone();
        let served = http::serve(state, listener, async move { stopped.cancelled().await }).await;
        shutdown.cancel();
        let _ = workers.await;
        served.map_err(AppError::Serve)
    }
}

async fn run_workers(config: Config, state: AppState, shutdown: CancellationToken) {
    migrate_until_done(&state.pool, &state.schema_ready, &shutdown).await;
    if shutdown.is_cancelled() {
        return;
    }
    let mut tasks = JoinSet::new();
    tasks.spawn(sampler::run(
        state.pool.clone(),
        state.metrics.clone(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    tasks.spawn(resync::run(
        state.pool.clone(),
        config.resync_interval,
        shutdown.clone(),
    ));
    tasks.spawn(crate::worker::activity::prune(
        state.pool.clone(),
        config.activity_retention,
        shutdown.clone(),
    ));
    tasks.spawn(sweep::run(
        state.pool.clone(),
        config.environment_sweep,
        shutdown.clone(),
    ));
    if config.job_workers > 0 {
        let mut runner_config = RunnerConfig::new(config.data_dir.clone(), config.cloud_urls());
        runner_config.workers = config.job_workers;
        runner_config.timeout = config.job_timeout;
        runner_config.public_url = config.public_base_url();
        runner_config.application_sets = config.argocd_application_sets.clone();
        runner_config.kubeconfig = config.kubeconfig.clone();
        runner_config.circuit.failures = config.circuit_failures;
        runner_config.circuit.probe = config.circuit_probe;
        let runner = Runner::new(
            state.pool.clone(),
            state.key.clone(),
            state.metrics.clone(),
            runner_config,
        );
        tasks.spawn(runner.run(shutdown.clone()));
    }
    if config.workers > 0 {
        let processor = Processor::new(
            state.pool.clone(),
            state.metrics.clone(),
            ProcessorConfig {
                workers: config.workers,
                batch_interval: config.batch_interval,
                refresh_application_sets: !config.argocd_application_sets.is_empty(),
                ..ProcessorConfig::default()
            },
        );
        tasks.spawn(processor.run(shutdown.clone()));
    } else {
        tracing::info!("RELAY_WORKERS=0: this relay only ingests");
    }
    while tasks.join_next().await.is_some() {}
}

/// The relay starts even when PostgreSQL is not up yet: it reports not-ready and keeps
/// trying.
async fn migrate_until_done(pool: &PgPool, ready: &AtomicBool, shutdown: &CancellationToken) {
    let mut delay = Duration::from_millis(500);
    loop {
        match relay_store::migrate(pool).await {
            Ok(()) => {
                ready.store(true, Ordering::Release);
                tracing::info!("database schema is current");
                return;
            }
            Err(err) => {
                let retry_in_ms = delay.as_millis() as u64;
                tracing::warn!(error = %err, retry_in_ms, "cannot apply migrations yet");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}
