//! Webhook ingest under load, with two baselines measured in the same run:
//! (a) the HTTP ceiling: the same requests against a bare axum handler that only verifies the
//!     signature; (b) the database's own limit: one single-row INSERT + COMMIT per delivery at
//!     the same concurrency and durability, straight through sqlx.
//! Then the relay itself (signature, dedupe, group commit) with its processor running.
//!
//! `cargo run --release -p relay-bench -- [concurrency] [seconds]` with DATABASE_URL pointing
//! at a PostgreSQL where it may create a throw-away database (scripts/bench.sh sets it up).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use load::{Load, Report};
use relay::http::{AppState, HttpSettings};
use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    let base_url =
        std::env::var("DATABASE_URL").context("DATABASE_URL must point at PostgreSQL")?;
    let database = format!("relay_bench_{}", std::process::id());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&base_url)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&admin)
        .await?;
    let mut url = url::Url::parse(&base_url)?;
    url.set_path(&database);
    let result = run(url.as_str(), concurrency, duration).await;
    admin.close().await;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&base_url)
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    result
}

async fn run(database_url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(64).max(8))
        .connect(database_url)
        .await?;
    relay_store::migrate(&pool).await?;
    let bodies = load::fixtures()?;
    let mean = bodies.iter().map(|(_, b)| b.len()).sum::<usize>() / bodies.len().max(1);
    println!(
        "ingest benchmark: {concurrency} concurrent senders, {} s per phase, bodies: all {} fixtures in turn (mean {mean} bytes)",
        duration.as_secs(),
        bodies.len()
    );
    println!(
        "PostgreSQL: fsync and synchronous_commit as configured on the server (every 2xx durable)"
    );

    // (a) HTTP ceiling.
    let ceiling = load::bare_server("bench-secret").await?;
    let bare = Load::new(ceiling.clone(), "bench-secret", bodies.clone(), concurrency)
        .run(duration)
        .await;
    print_report("bare axum, signature only", &bare, None, None);

    // (b) the database's own limit.
    let inserts = load::insert_baseline(&pool, &bodies, concurrency, duration).await?;
    print_report("single-row INSERT+COMMIT", &inserts, None, None);

    let relay = BenchRelay::start(&pool).await?;
    let relay_run = relay.load(&bodies, concurrency, duration).await;
    print_report(
        "relay ingest (group commit)",
        &relay_run,
        Some(&inserts),
        Some(&bare),
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&pool)
        .await?;
    println!(
        "  rows stored: {stored} (2xx answered: {}; every 2xx has its row: {})",
        relay_run.accepted,
        stored as u64 >= relay_run.accepted
    );

    // The same load with the processor planning every delivery as it arrives.
    let processing = relay.start_processor(&pool).await?;
    let first_new: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM deliveries")
        .fetch_one(&pool)
        .await?;
    let with_processing = relay.load(&bodies, concurrency, duration).await;
    print_report(
        "relay ingest + processing",
        &with_processing,
        Some(&inserts),
        Some(&bare),
    );
    report_processing(&pool, first_new).await?;
    println!(
        "peak resident memory of this process (relay + load generator): {} MB",
        load::peak_rss_mb()
    );
    relay.shutdown.cancel();
    let _ = processing.await;
    pool.close().await;
    Ok(())
}

/// The relay under test: its HTTP side on loopback, one integration to send to.
struct BenchRelay {
    url: String,
    secret: String,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl BenchRelay {
    async fn start(pool: &sqlx::PgPool) -> anyhow::Result<Self> {
        let key = relay::secrets::SecretKey::parse(&SecretString::from(KEY))?;
        let created = relay::admin::integrations::add(
            pool,
            &key,
            relay::admin::integrations::IntegrationInput {
                kind: Some(relay_core::IntegrationType::Cloud),
                repository: Some("bench/repo".into()),
                key: Some("k".into()),
                secret: Some("s".into()),
                ..Default::default()
            },
        )
        .await?;
        let metrics = Arc::new(Metrics::new());
        let state = AppState::new(pool.clone(), key, metrics.clone(), http_settings()?);
        state
            .schema_ready
            .store(true, std::sync::atomic::Ordering::Release);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let stopped = shutdown.clone();
        tokio::spawn(relay::http::serve(state, listener, async move {
            stopped.cancelled().await
        }));
        Ok(Self {
            url: format!("http://{addr}/webhooks/bitbucket/{}", created.record.id),
            secret: created.webhook_secret,
            metrics,
            shutdown,
        })
    }

    async fn load(
        &self,
        bodies: &[(String, Vec<u8>)],
        concurrency: usize,
        duration: Duration,
    ) -> load::Report {
        Load::new(self.url.clone(), &self.secret, bodies.to_vec(), concurrency)
            .run(duration)
            .await
    }

    /// Starts two processors and reports how fast they drain what the first phase left.
    async fn start_processor(
        &self,
        pool: &sqlx::PgPool,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let processor = Processor::new(
            pool.clone(),
            self.metrics.clone(),
            ProcessorConfig {
                workers: 2,
                ..ProcessorConfig::default()
            },
        );
        let backlog: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
                .fetch_one(pool)
                .await?;
        let draining = Instant::now();
        let processing = tokio::spawn(processor.run(self.shutdown.clone()));
        // Let it clear the first phase's rows before the clock starts: a drain with no load.
        let drained = wait_for_empty_queue(pool, Duration::from_secs(300)).await?;
        println!(
            "processing the first phase's backlog of {backlog}: {} in {:.1} s ({:.0}/s)",
            if drained { "drained" } else { "NOT drained" },
            draining.elapsed().as_secs_f64(),
            backlog as f64 / draining.elapsed().as_secs_f64()
        );
        Ok(processing)
    }
}

fn http_settings() -> anyhow::Result<HttpSettings> {
    Ok(HttpSettings {
        max_body_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(10),
        admin_token: None,
        metrics_token: None,
        max_connections: relay::http::server::default_max_connections(),
        activity_retention: Duration::from_secs(30 * 24 * 3600),
        public_base_url: "http://127.0.0.1".into(),
        cloud_urls: relay::bitbucket::CloudUrls {
            web: url::Url::parse("http://127.0.0.1:9")?,
            api: url::Url::parse("http://127.0.0.1:9")?,
        },
        ingest_writers: std::env::var("RELAY_BENCH_WRITERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(1),
        argocd_plugin_token: None,
    })
}

/// How far behind processing was when the load stopped, and how fast it drained.
async fn report_processing(pool: &sqlx::PgPool, first_new: i64) -> anyhow::Result<()> {
    let drain_started = Instant::now();
    let pending_at_end: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .fetch_one(pool)
            .await?;
    wait_for_empty_queue(pool, Duration::from_secs(120)).await?;
    let (processed, first, last, avg_lag, max_lag): (i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM min(received_at))::float8, EXTRACT(EPOCH FROM max(processed_at))::float8,
                EXTRACT(EPOCH FROM avg(processed_at - received_at))::float8, EXTRACT(EPOCH FROM max(processed_at - received_at))::float8
         FROM deliveries WHERE status <> 'pending' AND id > $1",
    )
    .bind(first_new)
    .fetch_one(pool)
    .await?;
    let span = last.unwrap_or_default() - first.unwrap_or_default();
    println!(
        "processing: {processed} processed, {:.0}/s over the run; backlog when the load stopped: {pending_at_end}, drained {:.1} s later; lag avg {:.0} ms, max {:.0} ms",
        processed as f64 / span.max(0.001),
        drain_started.elapsed().as_secs_f64(),
        avg_lag.unwrap_or_default() * 1000.0,
        max_lag.unwrap_or_default() * 1000.0,
    );
    Ok(())
}

/// Whether the queue emptied within `limit`; polls with an index probe, not a count, so the
/// polling itself costs nothing next to the work it waits for.
async fn wait_for_empty_queue(pool: &sqlx::PgPool, limit: Duration) -> anyhow::Result<bool> {
    let started = Instant::now();
    loop {
        let pending: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending')")
                .fetch_one(pool)
                .await?;
        if !pending {
            return Ok(true);
        }
        if started.elapsed() > limit {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_report(
    label: &str,
    report: &Report,
    insert_baseline: Option<&Report>,
    http_ceiling: Option<&Report>,
) {
    println!(
        "{label:<30} {:>8.0} accepted/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
        report.per_second(),
        report.p50_ms(),
        report.p99_ms(),
        report.errors
    );
    if let Some(base) = insert_baseline {
        println!(
            "  vs single-row INSERT baseline: {:.2}x throughput",
            report.per_second() / base.per_second()
        );
    }
    if let Some(ceiling) = http_ceiling {
        println!(
            "  vs bare HTTP ceiling: {:.2}x throughput",
            report.per_second() / ceiling.per_second()
        );
    }
}
