//! Turns stored deliveries into environment decisions.
//!
//! Workers are woken by `LISTEN relay_deliveries` (a trigger notifies on every insert, naming
//! the integrations: one a worker here holds wakes nobody, see `wake`) and by a periodic
//! sweep, which also picks up deliveries whose backoff has passed and covers any
//! notification lost while the listener reconnected. Ordering and exclusivity come from the
//! queue's claim (see `relay_store::queue`), so any number of workers in any number of relay
//! processes can share one database.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use relay_store::queue;
use relay_store::{PgPool, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::batch::{EndState, Speculation};
use super::rest::Rests;
use super::retry::RetrySchedule;
use super::wake::Wake;
use crate::metrics::Metrics;

pub const CHANNEL: &str = "relay_deliveries";

/// `RELAY_BATCH_INTERVAL_MS` unless set. relay-bench's stream of 16,000-21,000 deliveries a
/// second gathered batches of 1,420-1,650 with it (670-810 with 50 ms), and
/// ingest + processing ran faster than with 50 ms in 6 of 8 alternating runs (medians ~19,900
/// against ~18,500 a second); its processing lag (~100 ms on average, against ~55 ms) is short
/// next to anything a deployment waits for.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Most deliveries of one integration in one batch. A batch that reaches it counts as a
/// backlog and is claimed again at once, without a rest, so it sits above what one rest
/// gathers at the rates relay-bench reaches (1,420-1,650 in 100 ms at 16,000-21,000 a second;
/// at 1,000 those batches would be cut short and each followed by a small one).
pub const DEFAULT_BATCH_SIZE: i64 = 2000;

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub workers: usize,
    /// Most deliveries of one integration planned in one transaction.
    pub batch_size: i64,
    pub sweep_interval: Duration,
    pub retry: RetrySchedule,
    /// Queue an Argo CD refresh when a batch changes the plugin generator's output
    /// (`RELAY_ARGOCD_APPLICATIONSETS` is set).
    pub refresh_application_sets: bool,
    /// Under load, the least time from one batch's claim to the next claim of the same
    /// integration, so that its deliveries gather into bigger batches (see `rest`).
    pub batch_interval: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            batch_size: DEFAULT_BATCH_SIZE,
            sweep_interval: Duration::from_secs(5),
            retry: RetrySchedule::default(),
            refresh_application_sets: false,
            batch_interval: DEFAULT_BATCH_INTERVAL,
        }
    }
}

#[derive(Clone)]
pub struct Processor {
    pool: PgPool,
    metrics: Arc<Metrics>,
    config: ProcessorConfig,
    /// Integrations this process's workers hold a claim on.
    held: Arc<Mutex<HashSet<String>>>,
    /// One claim at a time in this process, so that a worker's probe already knows what its
    /// siblings hold (two probing at once would race for the same integration).
    claiming: Arc<tokio::sync::Mutex<()>>,
    /// The next batch of a backlogged integration, being read while its current batch is
    /// written (see `relay_store::queue::ReadAhead`).
    ahead: Arc<Mutex<Option<Ahead>>>,
    /// Integrations resting between batches under load, and the workers' wake-up.
    rests: Arc<Rests>,
    wake: Arc<Notify>,
}

/// A read-ahead in flight for one integration: the rows, and the first chunk of them planned
/// against the state the batch being written expects to leave (see `batch::Speculation`).
struct Ahead {
    integration_id: String,
    read: tokio::task::JoinHandle<Option<(queue::ReadAhead, Option<Speculation>)>>,
}

impl Processor {
    pub fn new(pool: PgPool, metrics: Arc<Metrics>, config: ProcessorConfig) -> Self {
        let wake = Arc::new(Notify::new());
        Self {
            rests: Arc::new(Rests::new(config.batch_interval, wake.clone())),
            wake,
            pool,
            metrics,
            config,
            held: Arc::default(),
            claiming: Arc::default(),
            ahead: Arc::default(),
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
        let (held, rests) = (self.held.clone(), self.rests.clone());
        // A resting integration is in hand too: its rest's end wakes the workers for it.
        let wake = Wake {
            notify: self.wake.clone(),
            in_hand: Arc::new(move |integration: &str| {
                lock(&held).contains(integration) || rests.is_resting(integration)
            }),
        };
        let step = move || {
            let processor = self.clone();
            async move { processor.process_next().await.map(|done| done > 0) }
        };
        super::wake::run(pool, CHANNEL, workers, sweep, shutdown, step, wake).await;
    }

    /// Claims and processes one batch (one integration's next deliveries). Returns how many
    /// deliveries were finished; 0 when nothing is claimable. [`Processor::run`]'s workers
    /// call it again after every batch it finished: a notification for an integration one of
    /// them holds wakes nobody (`wake`), since that next call claims what it announced.
    pub async fn process_next(&self) -> Result<usize, StoreError> {
        // A notification can wake every worker; one that probed an integration a sibling
        // holds would only find it locked, after walking its queue for nothing.
        let claiming = self.claiming.lock().await;
        let mut skip: Vec<String> = self.held_now().iter().cloned().collect();
        skip.extend(self.rests.resting_now());
        let (ahead, speculation) = match self.take_ahead(&skip).await {
            Some((read, planned)) => (Some(read), planned),
            None => (None, None),
        };
        let Some(claim) =
            queue::claim_batch(&self.pool, self.config.batch_size, &skip, ahead).await?
        else {
            return Ok(0);
        };
        let integration_id = claim.integration_id.clone();
        let _held = Held::new(self.held.clone(), integration_id.clone());
        let claimed_at = tokio::time::Instant::now();
        // A full batch means a backlog: its next batch is read while this one is written.
        let mut end = None;
        if claim.deliveries.len() as i64 >= self.config.batch_size {
            if let Some(last) = claim.deliveries.last() {
                end = Some(self.read_ahead(&claim.integration_id, last.id));
            }
        }
        drop(claiming);
        // Only what a failure is charged with: the head's body can be a megabyte.
        let head = HeadOf {
            id: claim.deliveries[0].id,
            attempts: claim.deliveries[0].attempts,
        };
        let count = claim.deliveries.len();
        // More may be waiting: no rest after it.
        let backlog = claim.cut_short(self.config.batch_size);
        let received: Vec<_> = claim.deliveries.iter().map(|d| d.received_at).collect();
        let span = tracing::info_span!(
            "process",
            integration.id = %claim.integration_id,
            delivery.id = head.id,
            batch = count,
        );
        let refresh = self.config.refresh_application_sets;
        let result = super::batch::process(claim, refresh, speculation, end)
            .instrument(span.clone())
            .await;
        let processed = self.record(result, head, received).instrument(span).await;
        // A failed batch's head backs off on its own; the rest is for a stream being processed.
        // Before `_held` is dropped, so that no sibling claims it in between.
        if processed {
            self.rests
                .after_batch(&integration_id, count, backlog, claimed_at);
        }
        Ok(count)
    }

    /// Records what processing a batch gave: its outcomes, or its failure charged to its
    /// oldest delivery. Whether it was processed.
    async fn record(
        &self,
        result: Result<Vec<queue::Outcome>, StoreError>,
        head: HeadOf,
        received: Vec<chrono::DateTime<Utc>>,
    ) -> bool {
        let err = match result {
            Ok(outcomes) => {
                let now = Utc::now();
                for (outcome, received_at) in outcomes.iter().zip(received) {
                    let lag = (now - received_at).num_milliseconds() as f64 / 1000.0;
                    self.metrics.record_processed(outcome.as_str(), lag);
                }
                return true;
            }
            Err(err) => err,
        };
        if matches!(err, StoreError::Corrupt(_)) {
            self.park(head.id, &err).await;
            return false;
        }
        // A transient failure is charged to the oldest delivery: it alone backs off (holding
        // the rest of its integration in order) and is parked after its last attempt,
        // releasing the others.
        let attempts = head.attempts + 1;
        let retry_in = self.config.retry.delay_after(attempts);
        let max_attempts = self.config.retry.max_attempts;
        match queue::record_retry(
            &self.pool,
            head.id,
            &err.to_string(),
            retry_in,
            max_attempts,
        )
        .await
        {
            Ok(true) => {
                tracing::error!(error = %err, attempts, "delivery failed; parked after its last attempt");
                self.metrics.record_processed("failed", 0.0);
            }
            Ok(false) => {
                tracing::warn!(error = %err, attempts, retry_in_ms = retry_in.as_millis() as u64, "delivery failed; will retry");
                self.metrics.record_processed("retry", 0.0);
            }
            Err(record_err) => {
                tracing::error!(error = %err, record_error = %record_err, "delivery failed and the failure could not be recorded; it will be claimed again")
            }
        }
        false
    }

    /// Starts reading `integration_id`'s deliveries after `after_id` on a connection of its
    /// own, replacing any earlier read-ahead. Once the batch being written sends the state it
    /// expects to leave on the returned sender, the first chunk read is planned against it.
    fn read_ahead(&self, integration_id: &str, after_id: i64) -> EndState {
        let (pool, max) = (self.pool.clone(), self.config.batch_size);
        let id = integration_id.to_owned();
        let (end, expected) = tokio::sync::oneshot::channel();
        let read = tokio::spawn(
            async move {
                let read = match queue::ReadAhead::read(&pool, &id, after_id, max).await {
                    Ok(read) => read,
                    Err(err) => {
                        // The claim reads the rows itself, as it would have anyway.
                        tracing::debug!(error = %err, "reading the next batch ahead failed");
                        return None;
                    }
                };
                match expected.await {
                    Ok((settings, state)) if !read.is_empty() => {
                        plan_ahead(read, settings, state).await
                    }
                    _ => Some((read, None)),
                }
            }
            .in_current_span(),
        );
        let replaced = lock(&self.ahead).replace(Ahead {
            integration_id: integration_id.to_owned(),
            read,
        });
        if let Some(stale) = replaced {
            stale.read.abort();
        }
        end
    }

    /// The read-ahead, once read, unless its integration is held by a sibling worker (which
    /// will want it for its next claim).
    async fn take_ahead(&self, held: &[String]) -> Option<(queue::ReadAhead, Option<Speculation>)> {
        let ahead = {
            let mut slot = lock(&self.ahead);
            slot.take_if(|a| !held.contains(&a.integration_id))?
        };
        ahead.read.await.ok().flatten()
    }

    fn held_now(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        lock(&self.held)
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

/// Plans the first chunk of `read` on a blocking thread (as every chunk is planned), the rows
/// moved there and back rather than copied. No plan when planning fails (the claim then plans
/// as usual); nothing at all when the thread was lost (the claim then reads the rows itself).
async fn plan_ahead(
    read: queue::ReadAhead,
    settings: std::sync::Arc<relay_core::Settings>,
    state: Vec<relay_core::Environment>,
) -> Option<(queue::ReadAhead, Option<Speculation>)> {
    let span = tracing::info_span!("planned_ahead");
    tokio::task::spawn_blocking(move || {
        let head = &read.deliveries()[..read.len().min(super::batch::CHUNK)];
        let planned = span.in_scope(|| super::batch::speculate(head, settings, state));
        (read, planned.ok())
    })
    .await
    .ok()
}

/// The batch's oldest delivery, which a transient failure is charged to.
struct HeadOf {
    id: i64,
    attempts: i32,
}

/// The held set or the read-ahead slot; a panic elsewhere while one was locked leaves it
/// consistent (one insert, remove or replacement), so a poisoned lock is used as is.
fn lock<T>(set: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An integration marked as held by this process while one of its workers processes it.
struct Held {
    set: Arc<Mutex<HashSet<String>>>,
    integration_id: String,
}

impl Held {
    fn new(set: Arc<Mutex<HashSet<String>>>, integration_id: String) -> Self {
        lock(&set).insert(integration_id.clone());
        Self {
            set,
            integration_id,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.integration_id);
    }
}
