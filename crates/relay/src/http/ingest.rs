//! Group commit for webhook ingest.
//!
//! Each request hands its delivery to a queue and waits for its own answer. A few writer
//! tasks take what is queued and store it with one autocommitted statement, so concurrent
//! deliveries share one round trip and one WAL flush instead of paying one each. With no
//! statement in flight a writer starts at once with whatever is queued (a lone webhook never
//! waits for company); while another writer's statement is in flight it starts only once
//! [`GroupCommit::overlap_rows`] deliveries are queued, or when that statement ends. Two
//! statements then overlap (one in PostgreSQL's hands while the other commits) without
//! splitting the queue into small statements, whose cost per row is higher.
//! A request is answered only after the statement holding its row has committed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_store::deliveries::{self, InsertError, InsertOutcome, NewDelivery};
use relay_store::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use crate::metrics::Metrics;

struct Pending {
    delivery: NewDelivery,
    reply: oneshot::Sender<Result<InsertOutcome, InsertError>>,
}

/// How ingest groups deliveries into statements.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommit {
    /// Statements in flight at once.
    pub writers: usize,
    /// Most deliveries in one statement.
    pub max_batch: usize,
    /// Deliveries a writer waits for before starting a statement while another is in flight.
    pub overlap_rows: usize,
    /// A statement not committed in this time is answered `Unavailable`.
    pub batch_timeout: Duration,
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
    /// Starts the writers; each statement's rows and time go to `metrics`.
    pub fn start(pool: PgPool, metrics: Arc<Metrics>, limits: GroupCommit) -> Self {
        let (writers, max_batch) = (limits.writers.max(1), limits.max_batch.max(1));
        let (queue, receiver) = mpsc::channel::<Pending>(max_batch * writers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let in_flight = Arc::new(InFlight::default());
        for _ in 0..writers {
            let writer = Writer {
                pool: pool.clone(),
                metrics: metrics.clone(),
                receiver: receiver.clone(),
                in_flight: in_flight.clone(),
                max_batch,
                overlap_rows: limits.overlap_rows.clamp(1, max_batch),
                batch_timeout: limits.batch_timeout,
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
    in_flight: Arc<InFlight>,
    max_batch: usize,
    overlap_rows: usize,
    batch_timeout: Duration,
}

/// The writers' statements in flight, and a signal each time one ends.
#[derive(Default)]
struct InFlight {
    statements: AtomicUsize,
    ended: Notify,
}

/// Counts a statement out of [`InFlight`] and wakes a writer gathering beside it.
struct StatementEnd<'a>(&'a InFlight);

impl Drop for StatementEnd<'_> {
    fn drop(&mut self) {
        self.0.statements.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

impl Writer {
    async fn run(self) {
        let mut held = HeldConnection::default();
        while let Some(batch) = self.next_batch().await {
            // Ended even if writing panics: a sibling gathering beside a statement that never
            // ends would hold a lone webhook until others arrive.
            let _ended = StatementEnd(&self.in_flight);
            self.write(batch, &mut held).await;
        }
    }

    /// The first delivery queued and whatever else is queued by then, gathered up to
    /// `overlap_rows` while another statement is in flight; `None` once the ingestor is gone.
    /// The writer holds the queue meanwhile, so its siblings cannot split what it gathers.
    async fn next_batch(&self) -> Option<Vec<Pending>> {
        let mut receiver = self.receiver.lock().await;
        let mut batch = vec![receiver.recv().await?];
        self.take_queued(&mut receiver, &mut batch);
        loop {
            // Armed before the count is read, so an end between the two still wakes us.
            let ended = self.in_flight.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if batch.len() >= self.overlap_rows
                || self.in_flight.statements.load(Ordering::Acquire) == 0
            {
                break;
            }
            tokio::select! {
                next = receiver.recv() => match next {
                    Some(next) => batch.push(next),
                    None => break,
                },
                () = &mut ended => {}
            }
        }
        self.take_queued(&mut receiver, &mut batch);
        self.in_flight.statements.fetch_add(1, Ordering::AcqRel);
        Some(batch)
    }

    fn take_queued(&self, receiver: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
        while batch.len() < self.max_batch {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
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
