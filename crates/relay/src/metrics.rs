//! Prometheus metrics, kept in the application state rather than a global registry so every
//! test server has its own.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use relay_core::EnvironmentStatus;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `unknown` when the path named no integration, to keep label values bounded.
    pub integration: String,
    /// `unverified` until the signature is checked: unsigned callers choose header values freely.
    pub event_key: String,
    /// Outcomes are the relay's own words: no allocation per request for them.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    pub integration: String,
    pub circuit: String,
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub circuit: String,
    pub to: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// `current` or `previous` (during a rotation's grace).
    pub secret: String,
}

pub struct Metrics {
    registry: Registry,
    /// 1 for each circuit's current state (closed, open, half_open), 0 for the others.
    pub circuit_state: Family<CircuitLabels, Gauge>,
    pub circuit_transitions: Family<TransitionLabels, Counter>,
    pub webhook_secret_verifications: Family<SecretLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub ingest_duration: Family<OutcomeLabels, Histogram>,
    /// Deliveries per group-commit statement, and how long each statement took.
    pub ingest_batch_rows: Histogram,
    pub ingest_batch_seconds: Histogram,
    pub processed: Family<OutcomeLabels, Counter>,
    pub processing_lag: Histogram,
    pub queue_depth: Gauge,
    pub queue_oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub environments: Family<StatusLabels, Gauge>,
    pub jobs: Family<JobLabels, Counter>,
    pub job_duration: Family<KindLabels, Histogram>,
    pub job_queue_age: Family<KindLabels, Histogram>,
    pub plugin_requests: Family<OutcomeLabels, Counter>,
    pub ready: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Registers `metric` under `name` and hands it back for the struct to keep.
fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

/// Ingest's group commit: rows per statement (1 to the writers' 256) and the statement's time
/// (0.25 ms to ~4 s; the writers give up at 5 s). Small batches with a short time mean an
/// idle relay; a growing time with full batches, a database that cannot keep up.
fn register_ingest_batches(registry: &mut Registry) -> (Histogram, Histogram) {
    let rows = register(
        registry,
        "ingest_batch_rows",
        "Webhook deliveries stored per group-commit statement",
        Histogram::new(exponential_buckets(1.0, 2.0, 9)),
    );
    let seconds = register(
        registry,
        "ingest_batch_duration_seconds",
        "Time of one group-commit statement of webhook ingest, commit included",
        Histogram::new(exponential_buckets(0.000_25, 2.0, 15)),
    );
    (rows, seconds)
}

type JobMetrics = (
    Family<JobLabels, Counter>,
    Family<KindLabels, Histogram>,
    Family<KindLabels, Histogram>,
);

/// Job attempts, their duration and how long they queued.
fn register_jobs(registry: &mut Registry) -> JobMetrics {
    let jobs = register(
        registry,
        "jobs",
        "Job attempts by kind and outcome (succeeded, retry, dead, lost_lease)",
        Family::<JobLabels, Counter>::default(),
    );
    let job_duration = register(
        registry,
        "job_duration_seconds",
        "Time one job attempt took, by kind",
        Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 16))
        }),
    );
    let job_queue_age = register(
        registry,
        "job_queue_age_seconds",
        "Time from a job being queued to an attempt finishing, by kind",
        Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 18))
        }),
    );
    (jobs, job_duration, job_queue_age)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("relay");
        let deliveries = register(
            &mut registry,
            "webhook_deliveries",
            "Webhook deliveries received, by integration, event key and outcome",
            Family::<DeliveryLabels, Counter>::default(),
        );
        // 0.25 ms to ~4 s: ingest should sit in the low milliseconds; the top buckets catch a
        // database that is struggling.
        let ingest_duration = register(
            &mut registry,
            "webhook_ingest_duration_seconds",
            "Time from request to answer for webhook deliveries, by outcome",
            Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
            }),
        );
        let (ingest_batch_rows, ingest_batch_seconds) = register_ingest_batches(&mut registry);
        let processed = register(
            &mut registry,
            "deliveries_processed",
            "Deliveries planned, by outcome (processed, ignored, failed, retry)",
            Family::<OutcomeLabels, Counter>::default(),
        );
        // Receipt to decision; seconds normally, minutes when backed up.
        let processing_lag = register(
            &mut registry,
            "delivery_processing_lag_seconds",
            "Time from receiving a delivery to its decisions being committed",
            Histogram::new(exponential_buckets(0.001, 2.0, 18)),
        );
        let queue_depth = register(
            &mut registry,
            "delivery_queue_depth",
            "Deliveries waiting to be processed",
            Gauge::default(),
        );
        let queue_oldest_seconds = register(
            &mut registry,
            "delivery_queue_oldest_seconds",
            "Age of the oldest delivery waiting to be processed",
            Gauge::<f64, std::sync::atomic::AtomicU64>::default(),
        );
        let environments = register(
            &mut registry,
            "environments",
            "Environments by status, across integrations",
            Family::<StatusLabels, Gauge>::default(),
        );
        let (jobs, job_duration, job_queue_age) = register_jobs(&mut registry);
        let plugin_requests = register(&mut registry, "argocd_plugin_requests", "Argo CD plugin generator calls, by outcome (ok, unauthorized, forbidden, invalid, ...)", Family::<OutcomeLabels, Counter>::default());
        let ready = register(&mut registry, "ready", "1 while this replica's last sample of the database succeeded with the schema current (as /readyz), else 0", Gauge::default());
        let (circuit_state, circuit_transitions, webhook_secret_verifications) =
            register_hardening(&mut registry);
        Self {
            registry,
            plugin_requests,
            ready,
            circuit_state,
            circuit_transitions,
            webhook_secret_verifications,
            jobs,
            job_duration,
            job_queue_age,
            deliveries,
            ingest_duration,
            ingest_batch_rows,
            ingest_batch_seconds,
            processed,
            processing_lag,
            queue_depth,
            queue_oldest_seconds,
            environments,
        }
    }

    pub fn record_delivery(
        &self,
        integration: &str,
        event_key: &str,
        outcome: &'static str,
        seconds: f64,
    ) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                integration: integration.to_owned(),
                event_key: event_key.to_owned(),
                outcome,
            })
            .inc();
        self.ingest_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(seconds);
    }

    /// One group-commit statement of ingest: how many deliveries it stored (or tried to) and
    /// how long it took, commit included.
    pub fn record_ingest_batch(&self, rows: usize, seconds: f64) {
        self.ingest_batch_rows.observe(rows as f64);
        self.ingest_batch_seconds.observe(seconds);
    }

    pub fn record_processed(&self, outcome: &'static str, lag_seconds: f64) {
        self.processed
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if lag_seconds > 0.0 {
            self.processing_lag.observe(lag_seconds);
        }
    }

    pub fn record_job(&self, kind: &str, outcome: &str, seconds: f64, queued_seconds: f64) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        let kind = KindLabels {
            kind: kind.to_owned(),
        };
        self.job_duration.get_or_create(&kind).observe(seconds);
        self.job_queue_age
            .get_or_create(&kind)
            .observe(queued_seconds);
    }

    pub fn record_plugin_request(&self, outcome: &'static str) {
        self.plugin_requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn set_queue(&self, depth: i64, oldest_seconds: f64) {
        self.queue_depth.set(depth);
        self.queue_oldest_seconds.set(oldest_seconds);
    }

    pub fn set_environments(&self, counts: &[(EnvironmentStatus, i64)]) {
        for &status in EnvironmentStatus::ALL {
            let count = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.environments
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_owned(),
                })
                .set(count);
        }
    }

    pub fn record_circuit_transition(&self, circuit: &str, to: &str) {
        self.circuit_transitions
            .get_or_create(&TransitionLabels {
                circuit: circuit.to_owned(),
                to: to.to_owned(),
            })
            .inc();
    }

    /// Sets the state gauges from every stored circuit; integrations without a row are closed
    /// and not listed, so the series stay few.
    pub fn set_circuits(&self, circuits: &[(String, String, relay_store::CircuitState)]) {
        self.circuit_state.clear();
        for (integration, circuit, current) in circuits {
            for &state in relay_store::CircuitState::ALL {
                self.circuit_state
                    .get_or_create(&CircuitLabels {
                        integration: integration.clone(),
                        circuit: circuit.clone(),
                        state: state.as_str().to_owned(),
                    })
                    .set(i64::from(state == *current));
            }
        }
    }

    /// A webhook signature verified by the `current` secret or, during a rotation's grace,
    /// the `previous` one.
    pub fn record_secret_verification(&self, secret: &str) {
        self.webhook_secret_verifications
            .get_or_create(&SecretLabels {
                secret: secret.to_owned(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

type HardeningFamilies = (
    Family<CircuitLabels, Gauge>,
    Family<TransitionLabels, Counter>,
    Family<SecretLabels, Counter>,
);

fn register_hardening(registry: &mut Registry) -> HardeningFamilies {
    let circuit_state = register(registry, "circuit_state", "Circuit breakers by integration and circuit (deploy_hook, bitbucket): 1 for the current state", Family::<CircuitLabels, Gauge>::default());
    let circuit_transitions = register(
        registry,
        "circuit_transitions",
        "Circuit breaker state changes seen by this process, by circuit and new state",
        Family::<TransitionLabels, Counter>::default(),
    );
    let verifications = register(
        registry,
        "webhook_secret_verifications",
        "Webhook signatures verified, by the secret that matched (current, previous)",
        Family::<SecretLabels, Counter>::default(),
    );
    (circuit_state, circuit_transitions, verifications)
}
