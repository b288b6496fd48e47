//! The delivery queue: claiming the next delivery to process, in order per integration.
//!
//! A delivery is claimable when it is pending, its backoff has passed, and no older delivery
//! of the same integration is still pending. The claim is a row lock (`FOR UPDATE SKIP
//! LOCKED`) held by the processing transaction, so:
//! * two workers, in one process or many, never process the same delivery;
//! * one integration's deliveries are processed one at a time, oldest first: while the head
//!   is locked, the next one is not claimable, and others skip the locked head;
//! * a worker that dies mid-way releases the lock with its connection, and the delivery is
//!   claimed again from scratch (nothing it wrote was committed).
//!
//! A delivery that keeps failing moves `run_after` forward (holding back its integration
//! for that long) and is parked as `failed` after the last attempt, releasing the rest.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::StoreError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedDelivery {
    pub id: i64,
    pub integration_id: String,
    pub event_key: String,
    pub body: Vec<u8>,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
}

/// A claimed delivery and the transaction holding its lock. Finishing consumes the claim,
/// so a delivery cannot be finished twice; dropping it rolls everything back.
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    pub delivery: QueuedDelivery,
}

/// Final state written with the processing results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Ignored,
    /// Permanent failure (e.g. a body that does not parse): recorded, never retried.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }
}

pub async fn claim_next(pool: &PgPool) -> Result<Option<Claim>, StoreError> {
    let mut tx = pool.begin().await?;
    let delivery = sqlx::query_as!(
        QueuedDelivery,
        r#"SELECT d.id, d.integration_id, d.event_key, d.body, d.attempts, d.received_at
           FROM deliveries d
           WHERE d.status = 'pending'
             AND d.run_after <= now()
             AND NOT EXISTS (
                 SELECT 1 FROM deliveries older
                 WHERE older.integration_id = d.integration_id
                   AND older.status = 'pending'
                   AND older.id < d.id)
           ORDER BY d.id
           LIMIT 1
           FOR UPDATE OF d SKIP LOCKED"#
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(delivery) = delivery else {
        tx.rollback().await?;
        return Ok(None);
    };
    // Serialises with anything else that plans for this integration (the reconciler).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
        delivery.integration_id
    )
    .execute(&mut *tx)
    .await?;
    Ok(Some(Claim { tx, delivery }))
}

impl Claim {
    /// The transaction, for writing environments and jobs together with the outcome.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Marks the delivery finished and commits everything written through [`Claim::conn`].
    pub async fn finish(
        mut self,
        outcome: Outcome,
        decisions: Option<serde_json::Value>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            r#"UPDATE deliveries
               SET status = $2, decisions = $3, last_error = $4, attempts = attempts + 1,
                   processed_at = clock_timestamp(), updated_at = now()
               WHERE id = $1"#,
            self.delivery.id,
            outcome.as_str(),
            decisions,
            error,
        )
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Records a transient failure after the claim was rolled back: retry after `retry_in`, or
/// park the delivery as failed once `max_attempts` is reached. Returns true when parked.
pub async fn record_retry(
    pool: &PgPool,
    delivery_id: i64,
    error: &str,
    retry_in: std::time::Duration,
    max_attempts: i32,
) -> Result<bool, StoreError> {
    let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    let status = sqlx::query_scalar!(
        r#"UPDATE deliveries
           SET attempts = attempts + 1,
               last_error = $2,
               run_after = now() + make_interval(secs => $3::bigint / 1000.0),
               status = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END,
               updated_at = now()
           WHERE id = $1
           RETURNING status"#,
        delivery_id,
        error,
        retry_ms,
        max_attempts,
    )
    .fetch_optional(pool)
    .await?;
    Ok(status.as_deref() == Some("failed"))
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

pub async fn stats(pool: &PgPool) -> Result<QueueStats, StoreError> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "pending!",
                  COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8 AS "oldest!"
           FROM deliveries WHERE status = 'pending'"#
    )
    .fetch_one(pool)
    .await?;
    Ok(QueueStats {
        pending: row.pending,
        oldest_pending_secs: row.oldest,
    })
}
