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
use relay_core::{Event, Plan};
use relay_store::queue::{self, Claim, Outcome};
use relay_store::{PgPool, StoreError};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::retry::RetrySchedule;
use crate::admin::integrations::settings;
use crate::metrics::Metrics;

pub const CHANNEL: &str = "relay_deliveries";

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub workers: usize,
    pub sweep_interval: Duration,
    pub retry: RetrySchedule,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            workers: 2,
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
    wake: Arc<Notify>,
}

impl Processor {
    pub fn new(pool: PgPool, metrics: Arc<Metrics>, config: ProcessorConfig) -> Self {
        Self {
            pool,
            metrics,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs the listener and the workers until `shutdown`; a worker finishes the delivery it
    /// holds before stopping.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        tasks.spawn(self.clone().listen(shutdown.clone()));
        for worker in 0..self.config.workers.max(1) {
            tasks.spawn(self.clone().work(worker, shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn listen(self, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN yet; sweeping meanwhile");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if let Err(err) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %err, "LISTEN failed");
                continue;
            }
            delay = Duration::from_millis(200);
            // Anything inserted while not listening is picked up now.
            self.wake.notify_waiters();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(_) => self.wake.notify_waiters(),
                        Err(err) => {
                            tracing::warn!(error = %err, "LISTEN connection lost");
                            break;
                        }
                    },
                }
            }
        }
    }

    async fn work(self, worker: usize, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            // Registered before draining, so a notification that arrives mid-drain is kept.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                match self.process_next().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(err) => {
                        tracing::warn!(worker, error = %err, "cannot claim deliveries");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.config.sweep_interval) => {}
            }
        }
    }

    /// Claims and processes one delivery. `Ok(false)` when none is claimable.
    pub async fn process_next(&self) -> Result<bool, StoreError> {
        let Some(claim) = queue::claim_next(&self.pool).await? else {
            return Ok(false);
        };
        let delivery = claim.delivery.clone();
        let span = tracing::info_span!(
            "process",
            integration.id = %delivery.integration_id,
            delivery.id = delivery.id,
            event.key = %delivery.event_key,
        );
        async {
            match process(claim).await {
                Ok(outcome) => {
                    let lag = (Utc::now() - delivery.received_at).num_milliseconds() as f64 / 1000.0;
                    self.metrics.record_processed(outcome.as_str(), lag);
                }
                Err(err) if matches!(err, StoreError::Corrupt(_)) => {
                    self.park(delivery.id, &err).await;
                }
                Err(err) => {
                    let attempts = delivery.attempts + 1;
                    let retry_in = self.config.retry.delay_after(attempts);
                    match queue::record_retry(&self.pool, delivery.id, &err.to_string(), retry_in, self.config.retry.max_attempts).await {
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
        Ok(true)
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

/// Parses, plans and writes everything in the claim's transaction.
async fn process(mut claim: Claim) -> Result<Outcome, StoreError> {
    let delivery = claim.delivery.clone();
    let event = match relay_core::parse(&delivery.event_key, &delivery.body) {
        Ok(event) => event,
        Err(err) => {
            // A body that does not parse will never parse: record why, do not retry.
            tracing::warn!(error = %err, "delivery cannot be parsed");
            claim
                .finish(Outcome::Failed, None, Some(&err.to_string()))
                .await?;
            return Ok(Outcome::Failed);
        }
    };
    if let Event::Ignored { reason, .. } = &event {
        let decisions = serde_json::json!({ "notes": [reason] });
        claim
            .finish(Outcome::Ignored, Some(decisions), None)
            .await?;
        tracing::info!(reason = %reason, "event ignored");
        return Ok(Outcome::Ignored);
    }
    if matches!(event, Event::Ping) {
        claim
            .finish(
                Outcome::Ignored,
                Some(serde_json::json!({ "notes": ["diagnostics ping"] })),
                None,
            )
            .await?;
        return Ok(Outcome::Ignored);
    }

    let record = relay_store::integrations::get_in(claim.conn(), &delivery.integration_id).await?;
    let settings = settings(&record);
    let before =
        relay_store::environments::load_for_planning(claim.conn(), &delivery.integration_id)
            .await?;
    let plan: Plan = relay_core::plan(&settings, &event, &before);
    let after = plan.apply(&before);
    let written = relay_store::environments::write_changes(
        claim.conn(),
        &delivery.integration_id,
        &before,
        &after,
    )
    .await?;
    relay_store::jobs::insert_all(
        claim.conn(),
        &delivery.integration_id,
        Some(delivery.id),
        &plan.jobs,
    )
    .await?;
    let decisions = serde_json::to_value(&plan)
        .map_err(|e| StoreError::Corrupt(format!("plan cannot be encoded: {e}")))?;
    claim
        .finish(Outcome::Processed, Some(decisions), None)
        .await?;
    tracing::info!(
        environments_written = written,
        jobs = plan.jobs.len(),
        notes = plan.notes.len(),
        "delivery processed"
    );
    Ok(Outcome::Processed)
}
