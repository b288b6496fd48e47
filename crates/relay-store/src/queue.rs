//! The delivery queue: claiming the next delivery to process, in order per integration.
//!
//! A worker claims a batch: the oldest due deliveries of one integration, under a
//! transaction-scoped advisory lock on that integration (`pg_try_advisory_xact_lock`, so busy
//! integrations are skipped, not waited for). The lock alone gives exclusivity: every writer
//! of a pending delivery's outcome holds it. The rows are not also locked (`FOR UPDATE`): a
//! row lock costs a WAL record per row, and a row locked by the transaction and then updated
//! in the batch's savepoint (a subtransaction) gets a MultiXact as its xmax, which index
//! scans can never mark dead, so the processed prefix of the queue's index (the partial
//! index on pending deliveries it had then) was walked entry by entry by every claim until
//! vacuum (measured: 8 ms and ~2,000 heap fetches per claim under load). So:
//! * two workers, in one process or many, never process the same delivery;
//! * one integration's deliveries are processed by one worker at a time, oldest first; the
//!   next batch is claimed only after the previous one committed;
//! * a worker that dies mid-way releases its locks with its connection, and the batch is
//!   claimed again from scratch (nothing it wrote was committed);
//! * batching lets one transaction (one WAL flush) carry many deliveries when a backlog forms.
//!
//! A delivery that keeps failing moves `run_after` forward (holding back its integration
//! for that long) and is parked as `failed` after the last attempt, releasing the rest.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::{DeliveryStatus, StoreError, Text};

mod ahead;
mod watermark;
pub use ahead::ReadAhead;
use watermark::Watermark;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedDelivery {
    pub id: i64,
    pub integration_id: String,
    pub event_key: String,
    pub body: Vec<u8>,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
}

/// The next deliveries of one integration, in order, and the transaction holding them.
/// Finishing consumes the claim, so it cannot be finished twice; dropping it rolls back.
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    pub integration_id: String,
    pub deliveries: Vec<QueuedDelivery>,
    seen: Watermark,
}

/// Final state of one delivery, written with the processing results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Ignored,
    /// Permanent failure (e.g. a body that does not parse): recorded, never retried.
    Failed,
}

impl Outcome {
    pub fn status(self) -> DeliveryStatus {
        match self {
            Self::Processed => DeliveryStatus::Processed,
            Self::Ignored => DeliveryStatus::Ignored,
            Self::Failed => DeliveryStatus::Failed,
        }
    }

    /// The status's text (also the processing metric's label).
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub delivery_id: i64,
    pub outcome: Outcome,
    pub decisions: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Claims up to `max` due deliveries of the integration whose oldest pending delivery is the
/// oldest, skipping integrations another worker holds and those in `skip` (held by this
/// process's other workers: probing them would only find them locked). Within an
/// integration, a delivery still waiting out its backoff holds back the ones behind it:
/// order first. With `ahead` (the integration's next batch read ahead, see [`ReadAhead`]),
/// what of it is confirmed under the lock is taken instead of being read again.
pub async fn claim_batch(
    pool: &PgPool,
    max: i64,
    skip: &[String],
    mut ahead: Option<ReadAhead>,
) -> Result<Option<Claim>, StoreError> {
    // The claim must walk `deliveries_integration_id` in order from the watermark and stop
    // after `max` rows. Right
    // after a burst the statistics still say few rows are pending, and the planner then
    // prefers a bitmap scan that reads and sorts the whole backlog, bodies included:
    // measured at 360 ms per claim with 100,000 pending (2.5 ms walking the index). So the
    // claim's statements run without bitmap or sequential scans; the rest of the
    // transaction gets the planner's usual choices back. Set with BEGIN, in its round trip:
    // a claim that finds nothing costs BEGIN, the probe and ROLLBACK, and under load about
    // as many claims find nothing as find a batch (measured in relay-bench).
    let mut tx = pool.begin_with(BEGIN_CLAIM).await?;
    // One index probe per integration for its oldest pending delivery, rather than grouping
    // every pending row: with a backlog of many thousands (measured in relay-bench) that
    // scan made each claim cost as much as the backlog was long. From the integration's
    // watermark on: the entries before it are processed deliveries' (see `watermark`).
    let candidates = sqlx::query!(
        r#"SELECT i.id AS "integration_id!", oldest.id AS "oldest!",
                  COALESCE(w.generation, 0) AS "generation!",
                  pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "snapshot_xmin!"
           FROM integrations i
           LEFT JOIN delivery_watermarks w ON w.integration_id = i.id
           CROSS JOIN LATERAL (
               SELECT d.id FROM deliveries d
               WHERE d.integration_id = i.id AND d.status = 'pending'
                 AND d.id >= COALESCE(w.below, 0)
               ORDER BY d.id
               LIMIT 1
           ) oldest
           WHERE i.id <> ALL($1)
           ORDER BY oldest.id
           LIMIT 32"#,
        skip,
    )
    .fetch_all(&mut *tx)
    .await?;
    for candidate in candidates {
        let integration_id = candidate.integration_id;
        // Serialises with every other worker and relay (and the reconciler) per integration.
        if !try_lock_integration(&mut tx, &integration_id).await? {
            continue;
        }
        let confirmed = match ahead.take_if(|a| a.integration_id() == integration_id) {
            Some(read) => read.confirm(&mut tx, candidate.oldest).await?,
            None => Vec::new(),
        };
        let deliveries = if confirmed.is_empty() {
            read_batch(&mut tx, &integration_id, candidate.oldest, max).await?
        } else {
            confirmed
        };
        if deliveries.is_empty() {
            continue;
        }
        restore_plans(&mut tx).await?;
        let last = deliveries.last().map_or(candidate.oldest, |d| d.id);
        let gapless = deliveries.iter().enumerate().all(|(i, d)| {
            i64::try_from(i)
                .ok()
                .and_then(|i| candidate.oldest.checked_add(i))
                == Some(d.id)
        });
        let seen = Watermark {
            oldest: candidate.oldest,
            generation: candidate.generation,
            snapshot_xmin: candidate.snapshot_xmin,
            next: last.saturating_add(1),
            gapless,
        };
        return Ok(Some(Claim {
            tx,
            integration_id,
            deliveries,
            seen,
        }));
    }
    tx.rollback().await?;
    Ok(None)
}

/// Raw body bytes one batch may hold: with bodies of up to a megabyte, a full batch of them
/// would otherwise hold a gigabyte in the relay. The first delivery always comes, whatever
/// its size.
pub const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The due prefix of `integration_id`'s pending deliveries, up to `max` of them and
/// [`MAX_BATCH_BODY_BYTES`] of bodies.
async fn read_batch(
    tx: &mut PgConnection,
    integration_id: &str,
    oldest: i64,
    max: i64,
) -> Result<Vec<QueuedDelivery>, StoreError> {
    // From the oldest pending delivery the probe found: the index entries before it belong to
    // processed deliveries (until VACUUM removes them) and one walk over them per claim is
    // enough. A delivery committed since with a lower id is claimed next time, as if it had
    // arrived a moment later.
    let mut rows = sqlx::query!(
        r#"SELECT id, integration_id, event_key, body, attempts, received_at,
                  run_after <= now() AS "due!"
           FROM deliveries
           WHERE integration_id = $1 AND status = 'pending' AND id >= $3
           ORDER BY id
           LIMIT $2"#,
        integration_id,
        max,
        oldest,
    )
    .fetch(&mut *tx);
    // The size bound is applied as rows arrive: the rest are read off the connection and
    // dropped one by one (measured: bounding the query itself with a window sum cost
    // PostgreSQL 3 µs more per delivery).
    let mut deliveries = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.try_next().await? {
        if !row.due || (bytes >= MAX_BATCH_BODY_BYTES && !deliveries.is_empty()) {
            break;
        }
        bytes += row.body.len();
        deliveries.push(QueuedDelivery {
            id: row.id,
            integration_id: row.integration_id,
            event_key: row.event_key,
            body: row.body,
            attempts: row.attempts,
            received_at: row.received_at,
        });
    }
    Ok(deliveries)
}

/// The processing lock of one integration, held until the transaction ends: a worker
/// skips an integration another holds (`try_lock_integration`), a deployment report waits
/// for the batch in flight (`lock_integration`). One key for both, so they exclude each
/// other.
pub(crate) async fn try_lock_integration(
    conn: &mut PgConnection,
    integration_id: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7)) AS "locked!""#,
        integration_id
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Waits for the processing lock of one integration (see [`try_lock_integration`]).
pub(crate) async fn lock_integration(
    conn: &mut PgConnection,
    integration_id: &str,
) -> Result<(), StoreError> {
    sqlx::query_scalar!(
        r#"SELECT pg_advisory_xact_lock(hashtextextended($1, 7))::text AS "locked""#,
        integration_id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}

/// `BEGIN` with bitmap and sequential scans off for the claim's probe and batch read, in one
/// simple query. Constant text, no parameters.
const BEGIN_CLAIM: &str =
    "BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off";

/// Turns bitmap and sequential scans back on for the rest of a transaction begun with
/// [`BEGIN_CLAIM`].
async fn restore_plans(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query_scalar!(
        r#"SELECT set_config('enable_bitmapscan', $1, true) || set_config('enable_seqscan', $1, true) AS "set!""#,
        "on"
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}

impl Claim {
    /// Whether the batch stopped at its bounds (`max` deliveries, or [`MAX_BATCH_BODY_BYTES`]
    /// of bodies) rather than at the end of what was due: more of its integration may be
    /// waiting.
    pub fn cut_short(&self, max: i64) -> bool {
        let bytes: usize = self.deliveries.iter().map(|d| d.body.len()).sum();
        self.deliveries.len() as i64 >= max || bytes >= MAX_BATCH_BODY_BYTES
    }

    /// The transaction, for writing environments and jobs together with the outcome.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Records every delivery's outcome and commits everything written through
    /// [`Claim::conn`]. All of the batch share one `processed_at`, read at commit time, so
    /// processing order across batches shows in it.
    pub async fn finish(mut self, finished: &[Finished]) -> Result<(), StoreError> {
        record_outcomes(&mut self.tx, finished).await?;
        self.commit().await
    }

    /// Commits what was written through [`Claim::conn`] (outcomes recorded one by one with
    /// [`record_outcomes`]), with what the claim's probe saw of the queue (see
    /// `watermark`).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        watermark::advance(&mut self.tx, &self.integration_id, self.seen).await?;
        self.tx.commit().await?;
        Ok(())
    }

    /// Gives the claim up, recording nothing: its transaction has rolled back when this
    /// returns, so the integration's lock is free for the next claim. A dropped claim rolls
    /// back too, but only once its connection's return to the pool has run, which a claim
    /// made right after can overtake.
    pub async fn release(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Writes the outcome of each delivery in `finished` on `conn` (the claim's transaction or a
/// savepoint inside it).
pub async fn record_outcomes(
    conn: &mut PgConnection,
    finished: &[Finished],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = finished.iter().map(|f| f.delivery_id).collect();
    let statuses: Vec<&str> = finished.iter().map(|f| f.outcome.as_str()).collect();
    // Borrowed, not cloned: a batch's decisions are encoded straight from the plans.
    let decisions: Vec<Option<sqlx::types::Json<&serde_json::Value>>> = finished
        .iter()
        .map(|f| f.decisions.as_ref().map(sqlx::types::Json))
        .collect();
    let errors: Vec<Option<String>> = finished
        .iter()
        .map(|f| f.error.as_deref().map(storable_text))
        .collect();
    sqlx::query!(
        r#"UPDATE deliveries d
           SET status = u.status, decisions = u.decisions, last_error = u.error,
               attempts = d.attempts + 1, updated_at = now(),
               processed_at = (SELECT clock_timestamp())
           FROM UNNEST($1::bigint[], $2::text[], $3::jsonb[], $4::text[]) AS u(id, status, decisions, error)
           WHERE d.id = u.id"#,
        &ids,
        &statuses[..] as _,
        &decisions[..] as _,
        &errors as &[Option<String>],
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An error message as PostgreSQL's `text` can hold it: a message quoting a payload may carry
/// a NUL character, which would make the very write recording the failure fail.
pub fn storable_text(text: &str) -> String {
    text.replace('\0', "\\u0000")
}

/// Records a transient failure after the claim was rolled back: retry after `retry_in`, or
/// park the delivery as failed once `max_attempts` is reached. Returns true when parked.
/// Takes the integration's processing lock first: another worker may have claimed the
/// integration since the rollback, and a delivery it has finished meanwhile is left alone.
pub async fn record_retry(
    pool: &PgPool,
    delivery_id: i64,
    error: &str,
    retry_in: std::time::Duration,
    max_attempts: i32,
) -> Result<bool, StoreError> {
    let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    let error = storable_text(error);
    let mut tx = pool.begin().await?;
    let integration_id = sqlx::query_scalar!(
        "SELECT integration_id FROM deliveries WHERE id = $1",
        delivery_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(integration_id) = integration_id else {
        return Ok(false);
    };
    lock_integration(&mut tx, &integration_id).await?;
    let status = sqlx::query_scalar!(
        r#"UPDATE deliveries
           SET attempts = attempts + 1,
               last_error = $2,
               run_after = now() + make_interval(secs => $3::bigint / 1000.0),
               status = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END,
               updated_at = now()
           WHERE id = $1 AND status = 'pending'
           RETURNING status AS "status: Text<DeliveryStatus>""#,
        delivery_id,
        error,
        retry_ms,
        max_attempts,
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(status.is_some_and(|s| s.0 == DeliveryStatus::Failed))
}

/// Puts a delivery back in the queue to be planned again (`delivery:redeliver`).
pub async fn redeliver(pool: &PgPool, delivery_id: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query!(
        r#"UPDATE deliveries
           SET status = 'pending', attempts = 0, run_after = now(), last_error = NULL,
               processed_at = NULL, updated_at = now()
           WHERE id = $1"#,
        delivery_id
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound("delivery"));
    }
    sqlx::query!("SELECT pg_notify('relay_deliveries', '')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    pub pending: i64,
    /// Age of the oldest pending delivery, in seconds.
    pub oldest_pending_secs: f64,
}

/// Pending deliveries across integrations, each counted from its watermark on (the rows
/// before it are processed).
pub async fn stats(pool: &PgPool) -> Result<QueueStats, StoreError> {
    // The planner cannot know how close the watermark is to the table's end, and would
    // rather read the whole table than most of an index.
    let mut tx = pool.begin_with(BEGIN_CLAIM).await?;
    let row = sqlx::query!(
        r#"SELECT COALESCE(sum(p.pending), 0)::bigint AS "pending!",
                  COALESCE(EXTRACT(EPOCH FROM now() - min(p.oldest)), 0)::float8 AS "oldest!"
           FROM integrations i
           LEFT JOIN delivery_watermarks w ON w.integration_id = i.id
           CROSS JOIN LATERAL (
               SELECT count(*) AS pending, min(d.received_at) AS oldest FROM deliveries d
               WHERE d.integration_id = i.id AND d.status = 'pending'
                 AND d.id >= COALESCE(w.below, 0)
           ) p"#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(QueueStats {
        pending: row.pending,
        oldest_pending_secs: row.oldest,
    })
}

/// Whether any delivery is pending: the first one found from each integration's watermark.
pub async fn has_pending(pool: &PgPool) -> Result<bool, StoreError> {
    let mut tx = pool.begin_with(BEGIN_CLAIM).await?;
    let pending = sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM integrations i
               LEFT JOIN delivery_watermarks w ON w.integration_id = i.id
               CROSS JOIN LATERAL (
                   SELECT d.id FROM deliveries d
                   WHERE d.integration_id = i.id AND d.status = 'pending'
                     AND d.id >= COALESCE(w.below, 0)
                   ORDER BY d.id
                   LIMIT 1
               ) p
           ) AS "pending!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pending)
}
