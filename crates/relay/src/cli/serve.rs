//! `serve` and `migrate`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::integrations::connect;
use super::CliError;
use crate::config::Config;
use crate::http::{self, AppState, HttpSettings};
use crate::metrics::Metrics;
use crate::secrets::SecretKey;
use crate::shutdown;
use crate::worker::jobs::{Runner, RunnerConfig};
use crate::worker::{resync, sampler, Processor, ProcessorConfig};

pub async fn migrate(config: &Config) -> Result<(), CliError> {
    let pool = connect(config).await?;
    relay_store::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}

pub async fn serve(config: Config) -> Result<(), CliError> {
    let key = SecretKey::from_config(config.secret_key.as_ref())?;
    let pool = relay_store::connect(
        config.require_database_url()?.expose_secret(),
        &relay_store::PoolOptions {
            max_connections: config.db_max_connections,
            acquire_timeout: config.db_acquire_timeout,
        },
    )?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", config.listen))?;
    let token = CancellationToken::new();
    tokio::spawn(shutdown::on_signal(token.clone()));

    let state = AppState::new(
        pool.clone(),
        key,
        Arc::new(Metrics::new()),
        HttpSettings {
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            admin_token: config.admin_token.clone(),
            public_base_url: config.public_base_url(),
            // Measured with relay-bench: one writer (larger transactions) beat two, two beat
            // four, four beat eight; while it commits, the next batch gathers.
            ingest_writers: 1,
            cloud_urls: config.cloud_urls(),
        },
    );
    tokio::spawn(migrate_until_done(
        pool,
        state.schema_ready.clone(),
        token.clone(),
    ));
    let workers = spawn_workers(&config, &state, token.clone());

    tracing::info!(listen = %config.listen, public_url = %config.public_base_url(), "relay listening");
    let stopped = token.clone();
    http::serve(state, listener, async move { stopped.cancelled().await })
        .await
        .context("HTTP server failed")?;
    // The server has drained; let workers finish the delivery each one holds.
    token.cancel();
    let _ = workers.await;
    tracing::info!("relay stopped");
    Ok(())
}

fn spawn_workers(
    config: &Config,
    state: &AppState,
    token: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let processor = Processor::new(
        state.pool.clone(),
        state.metrics.clone(),
        ProcessorConfig {
            workers: config.workers,
            ..ProcessorConfig::default()
        },
    );
    let ready = state.schema_ready.clone();
    let pool = state.pool.clone();
    let metrics = state.metrics.clone();
    let enabled = config.workers > 0;
    let state_pool = state.pool.clone();
    let resync_interval = config.resync_interval;
    let runner = (config.job_workers > 0).then(|| {
        let mut runner_config = RunnerConfig::new(config.data_dir.clone(), config.cloud_urls());
        runner_config.workers = config.job_workers;
        runner_config.timeout = config.job_timeout;
        runner_config.public_url = config.public_base_url();
        Runner::new(
            state.pool.clone(),
            state.key.clone(),
            state.metrics.clone(),
            runner_config,
        )
    });
    tokio::spawn(async move {
        // Nothing to claim before the schema exists.
        while !ready.load(Ordering::Acquire) {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let sampler = tokio::spawn(sampler::run(
            pool,
            metrics,
            Duration::from_secs(5),
            token.clone(),
        ));
        let jobs = runner.map(|runner| tokio::spawn(runner.run(token.clone())));
        let resync = tokio::spawn(resync::run(
            state_pool.clone(),
            resync_interval,
            token.clone(),
        ));
        if enabled {
            processor.run(token).await;
        } else {
            tracing::info!("RELAY_WORKERS=0: this relay only ingests");
        }
        let _ = sampler.await;
        if let Some(jobs) = jobs {
            let _ = jobs.await;
        }
        let _ = resync.await;
    })
}

/// The relay starts even when PostgreSQL is not up yet: it reports not-ready and keeps trying.
async fn migrate_until_done(
    pool: relay_store::PgPool,
    ready: Arc<AtomicBool>,
    token: CancellationToken,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        match relay_store::migrate(&pool).await {
            Ok(()) => {
                ready.store(true, Ordering::Release);
                tracing::info!("database schema is current");
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "cannot apply migrations yet")
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}
