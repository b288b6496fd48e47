//! Prometheus metrics, kept in the application state rather than a global registry so every
//! test server has its own.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `unknown` when the path named no integration, to keep label values bounded.
    pub integration: String,
    /// `unverified` until the signature is checked: unsigned callers choose header values freely.
    pub event_key: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub ingest_duration: Family<OutcomeLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("relay");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by integration, event key and outcome",
            deliveries.clone(),
        );
        // 0.25 ms to ~4 s: ingest should sit in the low milliseconds; the top buckets catch a
        // database that is struggling.
        let ingest_duration = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
        });
        registry.register(
            "webhook_ingest_duration_seconds",
            "Time from request to answer for webhook deliveries, by outcome",
            ingest_duration.clone(),
        );
        Self {
            registry,
            deliveries,
            ingest_duration,
        }
    }

    pub fn record_delivery(&self, integration: &str, event_key: &str, outcome: &str, seconds: f64) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                integration: integration.to_owned(),
                event_key: event_key.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.ingest_duration
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
