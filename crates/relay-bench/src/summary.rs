//! The figures of one run, and their median and spread over all runs.

use crate::meter::PhaseCost;

/// What one run measured, as ratios against that run's own baselines where a target is a
/// ratio (the machine is shared: absolute rates move from run to run, ratios much less).
#[derive(Debug, Clone, Default)]
pub(crate) struct Figures {
    /// Relay ingest, processor off, / single-row INSERT + COMMIT.
    pub ingest: f64,
    /// Backlog drain rate with no load / the INSERT baseline's rate.
    pub drain: f64,
    /// Relay ingest with the processor planning every delivery / INSERT baseline.
    pub processing: f64,
    pub processing_p99_ms: f64,
    /// Relay CPU per delivery stored, processor off, load apart, in µs.
    pub ingest_relay_cpu_us: f64,
    /// PostgreSQL CPU per delivery stored, processor off, in µs.
    pub ingest_postgres_cpu_us: f64,
    /// CPU per delivery planned while draining the backlog, in µs.
    pub drain_relay_cpu_us: f64,
    pub drain_postgres_cpu_us: f64,
    /// Deliveries still pending one second after the load stopped.
    pub pending_after_1s: i64,
    /// Deliveries per batch while processing under load.
    pub batch_size: f64,
    /// Load generator in its own process, processor on: accepted / INSERT baseline.
    pub separate: f64,
    /// CPU of the relay process per accepted delivery (ingest and processing), in µs.
    pub relay_cpu_us: f64,
    /// CPU of every PostgreSQL process per accepted delivery, in µs.
    pub postgres_cpu_us: f64,
    /// CPU of the INSERT baseline's PostgreSQL processes per row, in µs.
    pub baseline_postgres_cpu_us: f64,
    pub peak_rss_mb: f64,
    /// What the INSERT baseline, ingest alone and ingest + processing (load in process) cost
    /// the whole machine and the WAL.
    pub baseline: PhaseCost,
    pub ingest_cost: PhaseCost,
    pub drain_cost: PhaseCost,
    pub processing_cost: PhaseCost,
    /// Busy CPU of the whole machine per request of the bare axum phase, in µs.
    pub bare_busy_us: f64,
    /// What the relay's INSERT alone cost, with no HTTP in front of it.
    pub store_alone: PhaseCost,
    /// Its rate / the INSERT baseline's.
    pub store_alone_ratio: f64,
    /// The skeleton of the relay's ingest (signature check and group commit alone) under the
    /// same load: what it cost, and its rate / the INSERT baseline's.
    pub skeleton: PhaseCost,
    pub skeleton_ratio: f64,
    /// The INSERT baseline measured again after the relay's phases, / the first.
    pub baseline_drift: f64,
}

impl Figures {
    /// The most ingest could reach against the INSERT baseline with every core busy and the
    /// relay doing nothing but the bare HTTP exchange and its INSERT.
    fn ingest_floor(&self) -> f64 {
        self.baseline.busy_us / (self.bare_busy_us + self.store_alone.busy_us).max(1.0)
    }

    /// The same with each delivery also processed at what the drain cost it (in batches far
    /// bigger than any under load, so the cheapest processing measured).
    fn processing_floor(&self) -> f64 {
        self.baseline.busy_us
            / (self.bare_busy_us + self.store_alone.busy_us + self.drain_cost.busy_us).max(1.0)
    }
}

type Field = (&'static str, &'static str, fn(&Figures) -> f64);

const FIELDS: &[Field] = &[
    ("ingest alone / INSERT baseline", "x", |f| f.ingest),
    ("backlog drain / INSERT baseline", "x", |f| f.drain),
    ("  relay CPU per delivery stored", "µs", |f| {
        f.ingest_relay_cpu_us
    }),
    ("  PostgreSQL CPU per delivery stored", "µs", |f| {
        f.ingest_postgres_cpu_us
    }),
    ("  relay CPU per delivery drained", "µs", |f| {
        f.drain_relay_cpu_us
    }),
    ("  PostgreSQL CPU per delivery drained", "µs", |f| {
        f.drain_postgres_cpu_us
    }),
    ("  machine idle, drain", "%", |f| f.drain_cost.idle),
    ("  machine busy CPU per delivery drained", "µs", |f| {
        f.drain_cost.busy_us
    }),
    ("  WAL bytes per delivery drained", "", |f| {
        f.drain_cost.wal_bytes
    }),
    ("  machine idle, ingest alone", "%", |f| f.ingest_cost.idle),
    ("  machine busy CPU per delivery stored", "µs", |f| {
        f.ingest_cost.busy_us
    }),
    ("  ingest alone, machine fully busy / baseline", "x", |f| {
        f.ingest_cost.ceiling
    }),
    ("  WAL bytes per delivery stored", "", |f| {
        f.ingest_cost.wal_bytes
    }),
    ("  full-page images per delivery stored", "", |f| {
        f.ingest_cost.full_page_images
    }),
    ("  deliveries per transaction, ingest alone", "", |f| {
        f.ingest_cost.per_commit
    }),
    ("  group commit: deliveries per statement", "", |f| {
        f.ingest_cost.statement_rows
    }),
    ("  group commit: ms per statement", "ms", |f| {
        f.ingest_cost.statement_ms
    }),
    ("  bare HTTP: machine busy CPU per request", "µs", |f| {
        f.bare_busy_us
    }),
    ("  INSERT alone: machine busy CPU per row", "µs", |f| {
        f.store_alone.busy_us
    }),
    ("  INSERT alone / INSERT baseline", "x", |f| {
        f.store_alone_ratio
    }),
    (
        "  ingest floor, fully busy: HTTP + INSERT / baseline",
        "x",
        |f| f.ingest_floor(),
    ),
    (
        "  skeleton (signature + group commit) / baseline",
        "x",
        |f| f.skeleton_ratio,
    ),
    ("  skeleton: machine idle", "%", |f| f.skeleton.idle),
    ("  skeleton: machine busy CPU per delivery", "µs", |f| {
        f.skeleton.busy_us
    }),
    ("  skeleton: deliveries per statement", "", |f| {
        f.skeleton.statement_rows
    }),
    ("ingest + processing / INSERT baseline", "x", |f| {
        f.processing
    }),
    ("  machine idle, ingest + processing", "%", |f| {
        f.processing_cost.idle
    }),
    (
        "  machine busy CPU per delivery, + processing",
        "µs",
        |f| f.processing_cost.busy_us,
    ),
    (
        "  floor, fully busy: HTTP + INSERT + drain / baseline",
        "x",
        |f| f.processing_floor(),
    ),
    ("  + processing, machine fully busy / baseline", "x", |f| {
        f.processing_cost.ceiling
    }),
    ("  WAL bytes per delivery, + processing", "", |f| {
        f.processing_cost.wal_bytes
    }),
    ("  full-page images per delivery, + processing", "", |f| {
        f.processing_cost.full_page_images
    }),
    ("  deliveries per transaction, + processing", "", |f| {
        f.processing_cost.per_commit
    }),
    (
        "  group commit, + processing: ms per statement",
        "ms",
        |f| f.processing_cost.statement_ms,
    ),
    ("ingest + processing p99", "ms", |f| f.processing_p99_ms),
    ("pending 1 s after the load stopped", "", |f| {
        f.pending_after_1s as f64
    }),
    ("deliveries per batch under load", "", |f| f.batch_size),
    ("separate load process / INSERT baseline", "x", |f| {
        f.separate
    }),
    ("relay CPU per delivery", "µs", |f| f.relay_cpu_us),
    ("PostgreSQL CPU per delivery", "µs", |f| f.postgres_cpu_us),
    ("PostgreSQL CPU per baseline INSERT", "µs", |f| {
        f.baseline_postgres_cpu_us
    }),
    ("machine busy CPU per baseline INSERT", "µs", |f| {
        f.baseline.busy_us
    }),
    ("WAL bytes per baseline INSERT", "", |f| {
        f.baseline.wal_bytes
    }),
    (
        "INSERT baseline again at the end / at the start",
        "x",
        |f| f.baseline_drift,
    ),
    ("peak resident memory", "MB", |f| f.peak_rss_mb),
    // A run whose phases lost more than a few % to other guests measured its neighbours too.
    (
        "machine stolen by the hypervisor, most of any phase",
        "%",
        |f| {
            [
                &f.baseline,
                &f.ingest_cost,
                &f.drain_cost,
                &f.processing_cost,
                &f.skeleton,
            ]
            .iter()
            .map(|cost| cost.stolen)
            .fold(0.0, f64::max)
        },
    ),
];

/// Prints each figure's median and its range over `runs`.
pub(crate) fn print(runs: &[Figures]) {
    println!();
    println!("summary over {} run(s): median (min – max)", runs.len());
    for (label, unit, get) in FIELDS {
        let mut values: Vec<f64> = runs.iter().map(get).collect();
        values.sort_by(f64::total_cmp);
        let (Some(min), Some(max)) = (values.first(), values.last()) else {
            continue;
        };
        let median = values[values.len() / 2];
        println!("  {label:<42} {median:>8.2}{unit:<3} ({min:.2} – {max:.2})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_divide_the_baselines_cost_by_what_every_relay_pays() {
        let figures = Figures {
            baseline: PhaseCost {
                busy_us: 160.0,
                ..PhaseCost::default()
            },
            bare_busy_us: 20.0,
            store_alone: PhaseCost {
                busy_us: 44.0,
                ..PhaseCost::default()
            },
            drain_cost: PhaseCost {
                busy_us: 16.0,
                ..PhaseCost::default()
            },
            ..Figures::default()
        };
        assert!((figures.ingest_floor() - 2.5).abs() < 1e-9);
        assert!((figures.processing_floor() - 2.0).abs() < 1e-9);
        // A run that measured nothing gives no floor rather than a division by zero.
        assert!(Figures::default().ingest_floor().abs() < 1e-9);
    }
}
