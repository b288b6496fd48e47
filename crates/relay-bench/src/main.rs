//! Webhook ingest and processing under load, against baselines measured in the same run:
//! (a) the HTTP ceiling: the same requests against a bare axum handler that only verifies the
//!     signature; (b) the database's own limit: one single-row INSERT + COMMIT per delivery at
//!     the same concurrency and durability, straight through sqlx; (c) the relay's own
//!     multi-row INSERT with no HTTP in front of it, which with (a) gives the floor under
//!     ingest (see `floor`); (d) the same load against a skeleton of the relay's ingest, the
//!     signature check and its group-commit writers alone (see `skeleton`).
//! Then the relay itself: ingest alone (load in this process, then from a child process so
//! the relay's own CPU per delivery can be read from /proc), the backlog drained with no
//! load, and ingest with the processor planning every delivery (in process, then apart).
//! Each run uses a fresh database; the summary gives every figure's median and range.
//!
//! `cargo run --release -p relay-bench -- [concurrency] [seconds] [runs]` with DATABASE_URL
//! pointing at a PostgreSQL where it may create throw-away databases (scripts/bench.sh sets
//! it up).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod floor;
mod load;
mod meter;
mod process;
mod sender;
mod skeleton;
mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use load::{Load, Report};
use meter::Meter;
use relay::http::{AppState, HttpSettings};
use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use summary::Figures;
use tokio_util::sync::CancellationToken;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(process::CHILD_FLAG) {
        return process::run_child(&args[2..]).await;
    }
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let runs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let duration = Duration::from_secs(seconds);
    // RELAY_BENCH_LOG=text or json: the relay's logging set up as `relay serve` sets it up
    // (to stderr, `RUST_LOG` filtering), so that a run pays for its log lines as a relay
    // does; unset, nothing is logged.
    let _logs = match std::env::var("RELAY_BENCH_LOG").as_deref() {
        Ok("text") => Some(relay::telemetry::init(relay::config::LogFormat::Text)),
        Ok("json") => Some(relay::telemetry::init(relay::config::LogFormat::Json)),
        _ => None,
    };
    let base_url =
        std::env::var("DATABASE_URL").context("DATABASE_URL must point at PostgreSQL")?;
    let mut figures = Vec::new();
    for run in 1..=runs {
        println!("== run {run} of {runs} ==");
        figures.push(in_fresh_database(&base_url, run, concurrency, duration).await?);
    }
    summary::print(&figures);
    Ok(())
}

/// One run in a throw-away database of its own, dropped afterwards whatever happened.
async fn in_fresh_database(
    base_url: &str,
    run_number: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let database = format!("relay_bench_{}_{run_number}", std::process::id());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(base_url)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&admin)
        .await?;
    let mut url = url::Url::parse(base_url)?;
    url.set_path(&database);
    let result = run(url.as_str(), concurrency, duration).await;
    // RELAY_BENCH_KEEP_DATABASE=1 keeps it for a look at what the run wrote.
    if std::env::var_os("RELAY_BENCH_KEEP_DATABASE").is_none() {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&admin)
            .await?;
    } else {
        println!("kept database {database}");
    }
    admin.close().await;
    result
}

async fn run(
    database_url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    // Connected the way the relay connects (TLS as `relay_store::pool::connect_options`
    // decides); the INSERT baseline below takes the same options.
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(64).max(8))
        .connect_with(relay_store::pool::connect_options(database_url)?)
        .await?;
    relay_store::migrate(&pool).await?;
    // RELAY_BENCH_SETUP_SQL: statements run on the fresh database after the migrations, to
    // measure a schema change before writing it as a migration.
    if let Ok(setup) = std::env::var("RELAY_BENCH_SETUP_SQL") {
        sqlx::raw_sql(&setup)
            .execute(&pool)
            .await
            .context("RELAY_BENCH_SETUP_SQL")?;
        println!("setup SQL run after the migrations: {setup}");
    }
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
    let mut figures = Figures::default();

    // (a) HTTP ceiling.
    let ceiling = load::bare_server("bench-secret").await?;
    let machine = process::MachineCpu::now();
    let bare = Load::new(ceiling.clone(), "bench-secret", bodies.clone(), concurrency)
        .run(duration)
        .await;
    figures.bare_busy_us = micros_per(
        process::MachineCpu::now().since(machine).busy,
        bare.accepted,
    );
    print_report("bare axum, signature only", &bare, None, None);
    println!(
        "  machine busy CPU per request: {:.0} µs",
        figures.bare_busy_us
    );

    // (b) the database's own limit.
    let (postgres_before, meter) = (process::postgres_cpu(), Meter::start(&pool, None).await);
    let inserts = load::insert_baseline(&pool, &bodies, concurrency, duration).await?;
    figures.baseline_postgres_cpu_us =
        micros_per(process::postgres_cpu() - postgres_before, inserts.accepted);
    print_report("single-row INSERT+COMMIT", &inserts, None, None);
    figures.baseline = meter.stop(&pool, &inserts, &inserts).await;
    // (c) the floor under ingest: the relay's INSERT with no HTTP in front, every sender's
    // delivery in one statement (the most rows a statement can hold, the least per row).
    (figures.store_alone, figures.store_alone_ratio) =
        floor::store_alone(&pool, KEY, &bodies, concurrency, duration, &inserts).await?;
    // (d) the same load against the least the relay's ingest could do per request.
    (figures.skeleton, figures.skeleton_ratio) =
        skeleton::run(&pool, KEY, &bodies, concurrency, duration, &inserts).await?;

    let relay = BenchRelay::start(&pool).await?;
    let phases = Phases {
        pool: &pool,
        relay: &relay,
        bodies: &bodies,
        concurrency,
        duration,
        bare: &bare,
        inserts: &inserts,
    };
    let backlog = phases.ingest(&mut figures).await?;
    let processing = phases.processing(backlog, &mut figures).await?;
    figures.peak_rss_mb = load::peak_rss_mb() as f64;
    println!(
        "peak resident memory of this process (relay + in-process load generator): {} MB",
        figures.peak_rss_mb
    );
    relay.shutdown.cancel();
    let _ = processing.await;
    // The baseline again, once the relay has stopped: a run whose machine changed speed
    // between its start and its end compared the relay with a baseline it no longer had.
    // Vacuumed first, so that autovacuum's pass over the processed rows is not measured in it;
    // the relay's connections closed, so that the baseline's can all open.
    pool.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    sqlx::query("VACUUM deliveries").execute(&pool).await?;
    let again = load::insert_baseline(&pool, &bodies, concurrency, duration).await?;
    figures.baseline_drift = again.per_second() / inserts.per_second();
    print_report("single-row INSERT+COMMIT, again", &again, None, None);
    println!(
        "  after the relay's phases / before: {:.2}x",
        figures.baseline_drift
    );
    pool.close().await;
    Ok(figures)
}

/// What the relay's process and PostgreSQL's spent per accepted delivery while the load
/// came from a process of its own (until the queue was empty again, when processing).
struct Separate {
    report: process::ChildReport,
    relay_cpu_us: f64,
    postgres_cpu_us: f64,
}

/// The relay's phases of one run, each measured against the run's baselines.
struct Phases<'a> {
    pool: &'a sqlx::PgPool,
    relay: &'a BenchRelay,
    bodies: &'a [(String, Vec<u8>)],
    concurrency: usize,
    duration: Duration,
    bare: &'a Report,
    inserts: &'a Report,
}

impl Phases<'_> {
    /// Ingest alone, load in this process and then apart. Returns how many deliveries it
    /// stored (the backlog the processor drains next).
    async fn ingest(&self, figures: &mut Figures) -> anyhow::Result<u64> {
        let (pool, relay, inserts) = (self.pool, self.relay, self.inserts);
        let (postgres_before, meter) = (
            process::postgres_cpu(),
            Meter::start(pool, Some(&relay.metrics)).await,
        );
        let relay_run = relay
            .load(self.bodies, self.concurrency, self.duration)
            .await;
        figures.ingest_postgres_cpu_us = micros_per(
            process::postgres_cpu() - postgres_before,
            relay_run.accepted,
        );
        print_report(
            "relay ingest (group commit)",
            &relay_run,
            Some(inserts),
            Some(self.bare),
        );
        figures.ingest = relay_run.per_second() / inserts.per_second();
        figures.ingest_cost = meter.stop(pool, &relay_run, inserts).await;
        println!(
            "  PostgreSQL CPU per delivery: {:.0} µs (a baseline INSERT: {:.0} µs)",
            figures.ingest_postgres_cpu_us, figures.baseline_postgres_cpu_us
        );
        let apart = self.separate("relay ingest, load apart", false).await?;
        figures.ingest_relay_cpu_us = apart.relay_cpu_us;
        let accepted = relay_run.accepted + apart.report.accepted;
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
            .fetch_one(pool)
            .await?;
        println!(
            "  rows stored: {stored} (2xx answered: {accepted}; every 2xx has its row: {})",
            stored as u64 >= accepted
        );
        Ok(accepted)
    }

    /// The ingest phases' backlog drained with no load, then the same load with the
    /// processor planning every delivery as it arrives, in process and apart.
    async fn processing(
        &self,
        backlog: u64,
        figures: &mut Figures,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let (pool, relay, inserts) = (self.pool, self.relay, self.inserts);
        let (relay_before, postgres_before) = (process::own_cpu(), process::postgres_cpu());
        let meter = Meter::start(pool, None).await;
        let (processing, drain_rate) = relay.start_processor(pool).await?;
        figures.drain = drain_rate / inserts.per_second();
        figures.drain_relay_cpu_us = micros_per(process::own_cpu() - relay_before, backlog);
        figures.drain_postgres_cpu_us =
            micros_per(process::postgres_cpu() - postgres_before, backlog);
        println!(
            "  drain vs single-row INSERT baseline: {:.2}x rate; CPU per delivery: relay process {:.0} µs, PostgreSQL {:.0} µs",
            figures.drain, figures.drain_relay_cpu_us, figures.drain_postgres_cpu_us
        );
        figures.drain_cost = meter.stop_at(pool, backlog, drain_rate, inserts).await;
        let first_new = max_delivery_id(pool).await?;
        let meter = Meter::start(pool, Some(&relay.metrics)).await;
        let with_processing = relay
            .load(self.bodies, self.concurrency, self.duration)
            .await;
        print_report(
            "relay ingest + processing",
            &with_processing,
            Some(inserts),
            Some(self.bare),
        );
        figures.processing = with_processing.per_second() / inserts.per_second();
        figures.processing_p99_ms = with_processing.p99_ms();
        figures.processing_cost = meter.stop(pool, &with_processing, inserts).await;
        (figures.pending_after_1s, figures.batch_size) = report_processing(pool, first_new).await?;
        let apart = self
            .separate("relay + processing, load apart", true)
            .await?;
        figures.separate = apart.report.per_second() / inserts.per_second();
        figures.relay_cpu_us = apart.relay_cpu_us;
        figures.postgres_cpu_us = apart.postgres_cpu_us;
        Ok(processing)
    }

    /// One phase with the load from a child process; with `processing`, measured until the
    /// processor has emptied the queue again.
    async fn separate(&self, label: &str, processing: bool) -> anyhow::Result<Separate> {
        let (relay_before, postgres_before) = (process::own_cpu(), process::postgres_cpu());
        let prefix = format!(
            "{}-",
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let report = process::spawn_load(
            &self.relay.url,
            &self.relay.secret,
            self.concurrency,
            self.duration,
            &prefix,
        )
        .await?;
        if processing {
            wait_for_empty_queue(self.pool, Duration::from_secs(120)).await?;
        }
        let separate = Separate {
            relay_cpu_us: micros_per(process::own_cpu() - relay_before, report.accepted),
            postgres_cpu_us: micros_per(process::postgres_cpu() - postgres_before, report.accepted),
            report,
        };
        let report = &separate.report;
        print_line(
            label,
            report.per_second(),
            report.p50_ms,
            report.p99_ms,
            report.errors,
        );
        println!(
            "  vs single-row INSERT baseline: {:.2}x throughput; CPU per accepted delivery: relay process {:.0} µs, PostgreSQL {:.0} µs",
            report.per_second() / self.inserts.per_second(),
            separate.relay_cpu_us,
            separate.postgres_cpu_us
        );
        Ok(separate)
    }
}

fn micros_per(cpu: Duration, count: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / count.max(1) as f64
}

async fn max_delivery_id(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM deliveries")
            .fetch_one(pool)
            .await?,
    )
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
        let created = add_integration(pool, &key, "bench/repo").await?;
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

    /// Starts the processor (two workers unless RELAY_BENCH_PROCESSORS says otherwise) and
    /// reports how fast it drains what the first phase left.
    async fn start_processor(
        &self,
        pool: &sqlx::PgPool,
    ) -> anyhow::Result<(tokio::task::JoinHandle<()>, f64)> {
        let processor = Processor::new(
            pool.clone(),
            self.metrics.clone(),
            ProcessorConfig {
                workers: env_or("RELAY_BENCH_PROCESSORS", 2),
                batch_size: env_or("RELAY_BENCH_BATCH", ProcessorConfig::default().batch_size),
                batch_interval: Duration::from_millis(env_or(
                    "RELAY_BENCH_INTERVAL_MS",
                    ProcessorConfig::default().batch_interval.as_millis() as u64,
                )),
                ..ProcessorConfig::default()
            },
        );
        let backlog = relay_store::queue::stats(pool).await?.pending;
        let draining = Instant::now();
        let processing = tokio::spawn(processor.run(self.shutdown.clone()));
        // Let it clear the first phase's rows before the clock starts: a drain with no load.
        let drained = wait_for_empty_queue(pool, Duration::from_secs(300)).await?;
        let rate = backlog as f64 / draining.elapsed().as_secs_f64();
        println!(
            "processing the first phase's backlog of {backlog} with no load: {} in {:.1} s ({rate:.0}/s)",
            if drained { "drained" } else { "NOT drained" },
            draining.elapsed().as_secs_f64(),
        );
        Ok((processing, rate))
    }
}

/// A Bitbucket Cloud integration for `repository`, added as an admin adds one.
async fn add_integration(
    pool: &sqlx::PgPool,
    key: &relay::secrets::SecretKey,
    repository: &str,
) -> anyhow::Result<relay::admin::integrations::Created> {
    Ok(relay::admin::integrations::add(
        pool,
        key,
        relay::admin::integrations::IntegrationInput {
            kind: Some(relay_core::IntegrationType::Cloud),
            repository: Some(repository.into()),
            key: Some("k".into()),
            secret: Some("s".into()),
            ..Default::default()
        },
    )
    .await?)
}

/// A number from the environment, for comparing settings between runs (RELAY_BENCH_WRITERS,
/// RELAY_BENCH_OVERLAP, RELAY_BENCH_BATCH, RELAY_BENCH_PROCESSORS, RELAY_BENCH_INTERVAL_MS);
/// `default` when unset or not a number.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The relay's group commit as it runs by default, unless RELAY_BENCH_WRITERS or
/// RELAY_BENCH_OVERLAP say otherwise; what the relay's own settings give for 10 s requests.
fn group_commit() -> relay::http::ingest::GroupCommit {
    use relay::config::{DEFAULT_INGEST_OVERLAP_ROWS, DEFAULT_INGEST_WRITERS, MAX_INGEST_BATCH};
    relay::http::ingest::GroupCommit {
        writers: env_or("RELAY_BENCH_WRITERS", DEFAULT_INGEST_WRITERS),
        max_batch: MAX_INGEST_BATCH,
        overlap_rows: env_or("RELAY_BENCH_OVERLAP", DEFAULT_INGEST_OVERLAP_ROWS),
        batch_timeout: Duration::from_secs(5),
    }
}

fn http_settings() -> anyhow::Result<HttpSettings> {
    let group_commit = group_commit();
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
        ingest_writers: group_commit.writers,
        ingest_overlap_rows: group_commit.overlap_rows,
        argocd_plugin_token: None,
    })
}

/// How far behind processing was when the load stopped, and how fast it caught up. Returns
/// the deliveries still pending a second after the load stopped and the mean batch size
/// (a batch's deliveries share one `processed_at`).
async fn report_processing(pool: &sqlx::PgPool, first_new: i64) -> anyhow::Result<(i64, f64)> {
    let drain_started = Instant::now();
    let pending = || async { relay_store::queue::stats(pool).await.map(|s| s.pending) };
    let pending_at_end = pending().await?;
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(drain_started.elapsed())).await;
    let pending_after_1s = pending().await?;
    wait_for_empty_queue(pool, Duration::from_secs(120)).await?;
    // A batch's rows share `updated_at`, its transaction's `now()`; `processed_at` is read per
    // chunk of 250, so counting it counted chunks (up to the sixteenth session).
    let (processed, batches, first, last, avg_lag, max_lag): (i64, i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT updated_at), EXTRACT(EPOCH FROM min(received_at))::float8, EXTRACT(EPOCH FROM max(processed_at))::float8,
                EXTRACT(EPOCH FROM avg(processed_at - received_at))::float8, EXTRACT(EPOCH FROM max(processed_at - received_at))::float8
         FROM deliveries WHERE status <> 'pending' AND id > $1",
    )
    .bind(first_new)
    .fetch_one(pool)
    .await?;
    let span = last.unwrap_or_default() - first.unwrap_or_default();
    let batch_size = processed as f64 / batches.max(1) as f64;
    println!(
        "processing: {processed} processed in {batches} batches ({batch_size:.1} per batch), {:.0}/s over the run; pending when the load stopped: {pending_at_end}, a second later: {pending_after_1s}; lag avg {:.0} ms, max {:.0} ms",
        processed as f64 / span.max(0.001),
        avg_lag.unwrap_or_default() * 1000.0,
        max_lag.unwrap_or_default() * 1000.0,
    );
    Ok((pending_after_1s, batch_size))
}

/// Whether the queue emptied within `limit`; polls with the relay's own probe (from each
/// integration's watermark), not a count, so the polling costs little next to the work it
/// waits for.
async fn wait_for_empty_queue(pool: &sqlx::PgPool, limit: Duration) -> anyhow::Result<bool> {
    let started = Instant::now();
    loop {
        let pending = relay_store::queue::has_pending(pool).await?;
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
    print_line(
        label,
        report.per_second(),
        report.p50_ms(),
        report.p99_ms(),
        report.errors,
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

fn print_line(label: &str, per_second: f64, p50_ms: f64, p99_ms: f64, errors: u64) {
    println!(
        "{label:<30} {per_second:>8.0} accepted/s  p50 {p50_ms:>6.2} ms  p99 {p99_ms:>6.2} ms  errors {errors}"
    );
}
