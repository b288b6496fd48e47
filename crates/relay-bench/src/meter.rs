//! What a phase cost the whole machine and PostgreSQL's WAL, read around the phase: the
//! machine's idle share and busy CPU per delivery (every process: relay, load generator,
//! PostgreSQL, kernel) say whether a phase is bound by CPU and how far using the idle share
//! could take it; WAL bytes and full-page images per delivery say what each row costs the
//! log.

use relay::metrics::Metrics;

use crate::load::Report;
use crate::process::MachineCpu;

/// The relay's group-commit statements so far (`relay_ingest_batch_*`): how many, their rows
/// and their time in seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Statements {
    count: f64,
    rows: f64,
    seconds: f64,
}

impl Statements {
    fn read(metrics: &Metrics) -> Self {
        let text = metrics.render();
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        Self {
            count: value("relay_ingest_batch_rows_count"),
            rows: value("relay_ingest_batch_rows_sum"),
            seconds: value("relay_ingest_batch_duration_seconds_sum"),
        }
    }
}

/// The cluster's WAL counters (`pg_stat_wal`, PostgreSQL 14 and later) and the bench
/// database's committed transactions (`pg_stat_database`).
#[derive(Debug, Clone, Copy, Default)]
struct Wal {
    bytes: f64,
    full_page_images: i64,
    commits: i64,
}

impl Wal {
    async fn read(pool: &sqlx::PgPool) -> Option<Self> {
        let (bytes, full_page_images, commits): (f64, i64, i64) = sqlx::query_as(
            "SELECT wal_bytes::float8, wal_fpi,
                    (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
             FROM pg_stat_wal",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        Some(Self {
            bytes,
            full_page_images,
            commits,
        })
    }
}

/// A phase's costs, as the summary keeps them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PhaseCost {
    /// Share of the machine left idle, in %.
    pub idle: f64,
    /// Share of the machine the hypervisor gave to other guests, in %: a phase where it is
    /// more than a few % measured the neighbours as much as the relay.
    pub stolen: f64,
    /// Busy CPU of the whole machine per delivery, in µs.
    pub busy_us: f64,
    /// The phase's rate with the machine fully busy at the same CPU per delivery, as a ratio to
    /// the INSERT baseline.
    pub ceiling: f64,
    pub wal_bytes: f64,
    pub full_page_images: f64,
    /// Deliveries per committed transaction (statistics are flushed by each backend at most
    /// every 10 ms or when it goes idle, so this is approximate).
    pub per_commit: f64,
    /// The relay's group-commit statements: mean rows and mean time in ms.
    pub statement_rows: f64,
    pub statement_ms: f64,
}

/// Readings taken when a phase started.
pub(crate) struct Meter<'a> {
    cpu: MachineCpu,
    wal: Option<Wal>,
    relay: Option<(&'a Metrics, Statements)>,
}

impl<'a> Meter<'a> {
    /// With `relay`, the relay's group-commit statements are read too.
    pub(crate) async fn start(pool: &sqlx::PgPool, relay: Option<&'a Metrics>) -> Self {
        Self {
            wal: Wal::read(pool).await,
            relay: relay.map(|metrics| (metrics, Statements::read(metrics))),
            cpu: MachineCpu::now(),
        }
    }

    /// Prints and returns what the phase that produced `run` cost, against `inserts`.
    pub(crate) async fn stop(
        self,
        pool: &sqlx::PgPool,
        run: &Report,
        inserts: &Report,
    ) -> PhaseCost {
        self.stop_at(pool, run.accepted, run.per_second(), inserts)
            .await
    }

    /// The same for a phase that handled `count` deliveries at `rate` per second.
    pub(crate) async fn stop_at(
        self,
        pool: &sqlx::PgPool,
        count: u64,
        rate: f64,
        inserts: &Report,
    ) -> PhaseCost {
        let machine = MachineCpu::now().since(self.cpu);
        let wal = Wal::read(pool).await;
        let count = count.max(1) as f64;
        let (idle, stolen) = (machine.idle_share(), machine.stolen_share());
        let mut cost = PhaseCost {
            idle: idle * 100.0,
            stolen: stolen * 100.0,
            busy_us: machine.busy.as_secs_f64() * 1e6 / count,
            ceiling: rate / (1.0 - idle - stolen).max(0.01) / inserts.per_second(),
            ..PhaseCost::default()
        };
        println!(
            "  machine: {:.0} % idle, {:.1} % stolen by the hypervisor, {:.0} µs busy CPU per delivery (all processes); fully busy at that cost: {:.2}x the INSERT baseline",
            cost.idle, cost.stolen, cost.busy_us, cost.ceiling
        );
        if let (Some(before), Some(after)) = (self.wal, wal) {
            cost.wal_bytes = (after.bytes - before.bytes) / count;
            cost.full_page_images =
                (after.full_page_images - before.full_page_images) as f64 / count;
            cost.per_commit = count / (after.commits - before.commits).max(1) as f64;
            println!(
                "  WAL per delivery: {:.0} bytes, {:.2} full-page images; {:.1} deliveries per committed transaction",
                cost.wal_bytes, cost.full_page_images, cost.per_commit
            );
        }
        if let Some((metrics, before)) = self.relay {
            let after = Statements::read(metrics);
            let count = (after.count - before.count).max(1.0);
            cost.statement_rows = (after.rows - before.rows) / count;
            cost.statement_ms = (after.seconds - before.seconds) * 1000.0 / count;
            println!(
                "  group commit: {:.0} statements, {:.1} deliveries and {:.2} ms each",
                after.count - before.count,
                cost.statement_rows,
                cost.statement_ms
            );
        }
        cost
    }
}
