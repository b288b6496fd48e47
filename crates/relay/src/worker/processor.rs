//! Turns stored deliveries into environment decisions.
//!
//! Workers are woken by `LISTEN relay_deliveries` (a trigger notifies on every insert) and by
//! a periodic sweep, which also picks up deliveries whose backoff has passed and covers any
//! notification lost while the listener reconnected. Ordering and exclusivity come from the
//! queue's claim (see `relay_store::queue`), so any number of workers in any number of relay
//! processes can share one database.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use relay_core::{Event, JobSpec, Plan, PlanContext};
use relay_store::queue::{self, Claim, Finished, Outcome, QueuedDelivery};
use relay_store::{PgPool, StoreError};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::RetrySchedule;
use crate::metrics::Metrics;

pub const CHANNEL: &str = "relay_deliveries";

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub workers: usize,
    /// Most deliveries of one integration planned in one transaction.
    pub batch_size: i64,
    pub sweep_interval: Duration,
    pub retry: RetrySchedule,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            batch_size: 200,
            sweep_interval: Duration::from_secs(5),
            retry: RetrySchedule::default(),
        }
    }
}

#[derive(Clone)]
pub struct Processor {
    pool: PgPool,
    metrics: Arc<Metrics>,
    config: ProcessorConfig,
}

impl Processor {
    pub fn new(pool: PgPool, metrics: Arc<Metrics>, config: ProcessorConfig) -> Self {
        Self {
            pool,
            metrics,
            config,
        }
    }

    /// Runs the listener and the workers until `shutdown`; a worker finishes the delivery it
    /// holds before stopping.
    pub async fn run(self, shutdown: CancellationToken) {
        let (pool, workers, sweep) = (
            self.pool.clone(),
            self.config.workers,
            self.config.sweep_interval,
        );
        let step = move || {
            let processor = self.clone();
            async move { processor.process_next().await.map(|done| done > 0) }
        };
        super::wake::run(pool, CHANNEL, workers, sweep, shutdown, step).await;
    }

    /// Claims and processes one batch (one integration's next deliveries). Returns how many
    /// deliveries were finished; 0 when nothing is claimable.
    pub async fn process_next(&self) -> Result<usize, StoreError> {
        let Some(claim) = queue::claim_batch(&self.pool, self.config.batch_size).await? else {
            return Ok(0);
        };
        let head = claim.deliveries[0].clone();
        let count = claim.deliveries.len();
        let received: Vec<_> = claim.deliveries.iter().map(|d| d.received_at).collect();
        let span = tracing::info_span!(
            "process",
            integration.id = %claim.integration_id,
            delivery.id = head.id,
            batch = count,
        );
        async {
            match process(claim).await {
                Ok(outcomes) => {
                    let now = Utc::now();
                    for (outcome, received_at) in outcomes.iter().zip(received) {
                        let lag = (now - received_at).num_milliseconds() as f64 / 1000.0;
                        self.metrics.record_processed(outcome.as_str(), lag);
                    }
                }
                Err(err) if matches!(err, StoreError::Corrupt(_)) => {
                    self.park(head.id, &err).await;
                }
                // A transient failure is charged to the oldest delivery: it alone backs off
                // (holding the rest of its integration in order) and is parked after its last
                // attempt, releasing the others.
                Err(err) => {
                    let attempts = head.attempts + 1;
                    let retry_in = self.config.retry.delay_after(attempts);
                    match queue::record_retry(&self.pool, head.id, &err.to_string(), retry_in, self.config.retry.max_attempts).await {
                        Ok(true) => {
                            tracing::error!(error = %err, attempts, "delivery failed; parked after its last attempt");
                            self.metrics.record_processed("failed", 0.0);
                        }
                        Ok(false) => {
                            tracing::warn!(error = %err, attempts, retry_in_ms = retry_in.as_millis() as u64, "delivery failed; will retry");
                            self.metrics.record_processed("retry", 0.0);
                        }
                        Err(record_err) => tracing::error!(error = %err, record_error = %record_err, "delivery failed and the failure could not be recorded; it will be claimed again"),
                    }
                }
            }
        }
        .instrument(span)
        .await;
        Ok(count)
    }

    async fn park(&self, delivery_id: i64, err: &StoreError) {
        tracing::error!(error = %err, "delivery cannot be processed; parked");
        if let Err(record_err) =
            queue::record_retry(&self.pool, delivery_id, &err.to_string(), Duration::ZERO, 0).await
        {
            tracing::error!(error = %record_err, "cannot park the delivery");
        }
        self.metrics.record_processed("failed", 0.0);
    }
}

/// The planner's "now" is the delivery's receipt time, so a redelivered one is planned
/// against the same time.
fn received(delivery: &QueuedDelivery) -> PlanContext {
    PlanContext {
        now_ms: Some(delivery.received_at.timestamp_millis()),
    }
}

/// Parses and plans each delivery in order against the state the previous ones produced,
/// then writes the net environment changes, every job and every outcome in the claim's
/// transaction.
async fn process(mut claim: Claim) -> Result<Vec<Outcome>, StoreError> {
    let integration_id = claim.integration_id.clone();
    let record = relay_store::integrations::get_in(claim.conn(), &integration_id).await?;
    let settings = record.settings;
    let before =
        relay_store::environments::load_for_planning(claim.conn(), &integration_id).await?;
    let mut current = before.clone();
    let mut jobs: Vec<(Option<i64>, JobSpec)> = Vec::new();
    let mut finished = Vec::with_capacity(claim.deliveries.len());
    for delivery in &claim.deliveries {
        let span = tracing::info_span!("delivery", delivery.id = delivery.id, event.key = %delivery.event_key);
        let _entered = span.enter();
        let parsed = if relay_core::event::is_internal(&delivery.event_key) {
            serde_json::from_slice::<Event>(&delivery.body).map_err(|e| e.to_string())
        } else {
            relay_core::parse(&delivery.event_key, &delivery.body).map_err(|e| e.to_string())
        };
        let result = match parsed {
            // A body that does not parse will never parse: record why, do not retry.
            Err(err) => {
                tracing::warn!(error = %err, "delivery cannot be parsed");
                Finished {
                    delivery_id: delivery.id,
                    outcome: Outcome::Failed,
                    decisions: None,
                    error: Some(err),
                }
            }
            Ok(Event::Ignored { reason, .. }) => {
                tracing::info!(reason = %reason, "event ignored");
                Finished {
                    delivery_id: delivery.id,
                    outcome: Outcome::Ignored,
                    decisions: Some(json!({ "notes": [reason] })),
                    error: None,
                }
            }
            Ok(Event::Ping) => Finished {
                delivery_id: delivery.id,
                outcome: Outcome::Ignored,
                decisions: Some(json!({ "notes": ["diagnostics ping"] })),
                error: None,
            },
            Ok(event) => {
                let context = received(delivery);
                let plan: Plan = relay_core::plan_at(&settings, &event, &current, context);
                current = plan.apply(&current);
                tracing::info!(
                    changes = plan.changes.len(),
                    jobs = plan.jobs.len(),
                    notes = plan.notes.len(),
                    "delivery planned"
                );
                jobs.extend(
                    plan.jobs
                        .iter()
                        .cloned()
                        .map(|job| (Some(delivery.id), job)),
                );
                let decisions = serde_json::to_value(&plan)
                    .map_err(|e| StoreError::Corrupt(format!("plan cannot be encoded: {e}")))?;
                Finished {
                    delivery_id: delivery.id,
                    outcome: Outcome::Processed,
                    decisions: Some(decisions),
                    error: None,
                }
            }
        };
        finished.push(result);
    }
    let written =
        relay_store::environments::write_changes(claim.conn(), &integration_id, &before, &current)
            .await?;
    let tagged: Vec<(Option<i64>, &JobSpec)> = jobs.iter().map(|(d, j)| (*d, j)).collect();
    relay_store::jobs::insert_tagged(claim.conn(), &integration_id, &tagged).await?;
    let outcomes = finished.iter().map(|f| f.outcome).collect();
    claim.finish(&finished).await?;
    tracing::info!(
        deliveries = finished.len(),
        environments_written = written,
        jobs = jobs.len(),
        "batch processed"
    );
    Ok(outcomes)
}
