//! Group commit for webhook ingest.
//!
//! Each request hands its delivery to a queue and waits for its own answer. A few writer
//! tasks take whatever is queued at that moment (never waiting for more: the first request
//! of a batch is held only as long as the previous commit takes) and store it with one
//! autocommitted statement, so concurrent deliveries share one round trip and one WAL flush
//! instead of paying one each.
//! A request is answered only after the statement holding its row has committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_store::deliveries::{self, InsertError, InsertOutcome, NewDelivery};
use relay_store::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::metrics::Metrics;

struct Pending {
    delivery: NewDelivery,
    reply: oneshot::Sender<Result<InsertOutcome, InsertError>>,
}

#[derive(Clone, Debug)]
pub struct Ingestor {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Ingestor {
    /// `writers` batches may be in flight at once, each with up to `max_batch` rows; a batch
    /// not stored within `batch_timeout` is answered `Unavailable`.
    /// Each statement's rows and time go to `metrics`.
    pub fn start(
        pool: PgPool,
        metrics: Arc<Metrics>,
        writers: usize,
        max_batch: usize,
        batch_timeout: Duration,
    ) -> Self {
        let (queue, receiver) = mpsc::channel::<Pending>(max_batch * writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            let writer = Writer {
                pool: pool.clone(),
                metrics: metrics.clone(),
                receiver: receiver.clone(),
                max_batch: max_batch.max(1),
                batch_timeout,
            };
            tokio::spawn(writer.run());
        }
        Self { queue }
    }

    pub async fn store(&self, delivery: NewDelivery) -> Result<InsertOutcome, InsertError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| InsertError::Unavailable)?;
        answer.await.unwrap_or(Err(InsertError::Unavailable))
    }
}

/// One group-commit writer: takes what is queued, stores it with one statement, answers.
struct Writer {
    pool: PgPool,
    metrics: Arc<Metrics>,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_batch: usize,
    batch_timeout: Duration,
}

impl Writer {
    async fn run(self) {
        let mut held = HeldConnection::default();
        while let Some(batch) = self.next_batch().await {
            self.write(batch, &mut held).await;
        }
    }

    /// The first delivery queued, and whatever else is queued by then; `None` once the
    /// ingestor is gone.
    async fn next_batch(&self) -> Option<Vec<Pending>> {
        let mut receiver = self.receiver.lock().await;
        let mut batch = vec![receiver.recv().await?];
        while batch.len() < self.max_batch {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn write(&self, batch: Vec<Pending>, held: &mut HeldConnection) {
        let (pool, batch_timeout) = (&self.pool, self.batch_timeout);
        let (deliveries, replies): (Vec<NewDelivery>, Vec<_>) =
            batch.into_iter().map(|p| (p.delivery, p.reply)).unzip();
        let unavailable = || {
            deliveries
                .iter()
                .map(|_| Err(InsertError::Unavailable))
                .collect::<Vec<_>>()
        };
        let results = match held.get(pool).await {
            // A half-open connection would otherwise hold every request until the kernel
            // gives up on it (minutes); Bitbucket waits 10 s.
            Ok(conn) => {
                let started = Instant::now();
                let results = tokio::time::timeout(
                    batch_timeout,
                    deliveries::insert_batch(conn, &deliveries),
                )
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(
                        rows = deliveries.len(),
                        "storing a batch of deliveries timed out"
                    );
                    unavailable()
                });
                self.metrics
                    .record_ingest_batch(deliveries.len(), started.elapsed().as_secs_f64());
                results
            }
            Err(()) => unavailable(),
        };
        if results.iter().any(|r| {
            matches!(
                r,
                Err(InsertError::Unavailable) | Err(InsertError::Failed(_))
            )
        }) {
            // The connection may be the broken part (or mid-statement after a timeout): the next
            // batch starts on a fresh one.
            held.drop_connection();
        }
        for (reply, result) in replies.into_iter().zip(results) {
            // The requester may have gone (client hung up); its row is stored all the same and
            // Bitbucket's retry will be answered as a duplicate.
            let _ = reply.send(result);
        }
    }
}

/// A writer keeps its connection between batches: taking one from the pool costs a health
/// check round trip each time, as much as the batch's own statement. A connection left idle
/// for a while goes back, so a database restart between bursts is caught by that check
/// instead of failing the next batch.
#[derive(Default)]
struct HeldConnection {
    conn: Option<(PoolConnection<Postgres>, Instant)>,
}

const IDLE_RECHECK: Duration = Duration::from_secs(1);

impl HeldConnection {
    async fn get(&mut self, pool: &PgPool) -> Result<&mut PgConnection, ()> {
        if self
            .conn
            .as_ref()
            .is_some_and(|(_, used)| used.elapsed() > IDLE_RECHECK)
        {
            self.conn = None;
        }
        let (conn, used) = match self.conn {
            Some(ref mut held) => held,
            None => {
                let conn = pool.acquire().await.map_err(|err| {
                    tracing::warn!(error = %err, "no database connection for the ingest writer");
                })?;
                self.conn.insert((conn, Instant::now()))
            }
        };
        *used = Instant::now();
        Ok(&mut **conn)
    }

    fn drop_connection(&mut self) {
        if let Some((conn, _)) = self.conn.take() {
            // Not returned to the pool: a connection that just failed may be half-closed.
            drop(conn.detach());
        }
    }
}
