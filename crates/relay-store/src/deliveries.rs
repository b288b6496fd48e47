//! Deliveries: every webhook the relay acknowledged, stored before the acknowledgement.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::hinted::Hinted;
use crate::{DeliveryStatus, StoreError, Text};

/// A delivery to store, owned so it can wait in the ingest batcher's queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub integration_id: String,
    pub request_id: Option<String>,
    pub event_key: String,
    pub headers: serde_json::Value,
    /// Shared with the request that carried it: no copy on the way to the database.
    pub body: bytes::Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored and committed.
    Stored(i64),
    /// The same request id was stored before; nothing was written.
    Duplicate(i64),
}

/// Why one delivery of a batch was not stored; `Clone` so a failed batch can answer each of
/// its waiting requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("the database is unavailable")]
    Unavailable,
    #[error("the integration no longer exists")]
    UnknownIntegration,
    #[error("storing the delivery failed: {0}")]
    Failed(String),
}

impl From<StoreError> for InsertError {
    fn from(err: StoreError) -> Self {
        match err {
            err if err.is_unavailable() => Self::Unavailable,
            StoreError::NotFound(_) => Self::UnknownIntegration,
            other => Self::Failed(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    pub id: i64,
    pub integration_id: String,
    pub request_id: Option<String>,
    pub event_key: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub integration_id: String,
    pub request_id: Option<String>,
    pub event_key: String,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub decisions: Option<serde_json::Value>,
}

/// Stores a delivery in its own transaction: when this returns `Stored`, the row is durable.
/// A request id seen before for the same integration returns `Duplicate`.
pub async fn insert(pool: &PgPool, delivery: &NewDelivery) -> Result<InsertOutcome, InsertError> {
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    Ok(insert_in(&mut conn, delivery).await?)
}

/// Group commit: stores `batch` with one statement on `conn`, so many concurrent deliveries
/// share one round trip and one WAL flush. The statement runs in its own implicit
/// transaction (no BEGIN/COMMIT round trips): it is atomic, and every `Stored` answer is
/// durable once this returns. If the batch fails for a reason other than the database being
/// down (one row's integration was deleted meanwhile), each delivery is retried alone so one
/// bad row cannot fail the others.
pub async fn insert_batch(
    conn: &mut PgConnection,
    batch: &[NewDelivery],
) -> Vec<Result<InsertOutcome, InsertError>> {
    match insert_many(conn, batch).await {
        Ok(outcomes) => outcomes,
        Err(err) if err.is_unavailable() => batch
            .iter()
            .map(|_| Err(InsertError::Unavailable))
            .collect(),
        Err(_) if batch.len() > 1 => {
            let mut results = Vec::with_capacity(batch.len());
            for delivery in batch {
                results.push(insert_in(conn, delivery).await.map_err(InsertError::from));
            }
            results
        }
        Err(err) => vec![Err(InsertError::from(err))],
    }
}

/// One multi-row INSERT for the whole batch. Identity values are drawn in the order rows are
/// produced, and the rows are produced in input order, so sorting the returned ids recovers
/// which input each belongs to: when every row was stored, by position; when some were left
/// out as seen before, inputs with a request id by key and those without (never in conflict)
/// by position. The outer error is the batch statement's, which wrote nothing; once it has
/// committed, each row gets its own answer.
async fn insert_many(
    conn: &mut PgConnection,
    batch: &[NewDelivery],
) -> Result<Vec<Result<InsertOutcome, InsertError>>, StoreError> {
    // Borrowed, not cloned: the batch is encoded straight from the requests' values.
    let integration_ids: Vec<&str> = batch.iter().map(|d| d.integration_id.as_str()).collect();
    let request_ids: Vec<Option<&str>> = batch.iter().map(|d| d.request_id.as_deref()).collect();
    let event_keys: Vec<&str> = batch.iter().map(|d| d.event_key.as_str()).collect();
    let headers: Vec<sqlx::types::Json<&serde_json::Value>> = batch
        .iter()
        .map(|d| sqlx::types::Json(&d.headers))
        .collect();
    let bodies: Vec<&[u8]> = batch.iter().map(|d| d.body.as_ref()).collect();
    let columns = Columns {
        integration_ids: Hinted::array(&integration_ids),
        // A NULL element is its length prefix alone.
        request_ids: Hinted::array_with(&request_ids, |id| id.map_or(0, str::len)),
        event_keys: Hinted::array(&event_keys),
        headers: Hinted::array_with(&headers, |headers| jsonb_size(headers.0)),
        bodies: Hinted::array(&bodies),
    };
    // Without ON CONFLICT first: its speculative insertion costs PostgreSQL a few µs per row
    // (measured in psql), and a request id seen before is rare (Bitbucket's retries). When
    // one is in the batch, the statement fails having stored nothing, and the batch is
    // stored again with ON CONFLICT DO NOTHING, which leaves the repeated ones out.
    match insert_rows(conn, &columns).await {
        Ok(mut ids) if ids.len() == batch.len() => {
            ids.sort_unstable();
            return Ok(ids
                .into_iter()
                .map(|id| Ok(InsertOutcome::Stored(id)))
                .collect());
        }
        // Cannot happen: the statement stores one row per element and returns each id. Were
        // it to, the caller stores each alone: one with a request id is answered with the row
        // already stored, one without is stored again, as Bitbucket's retry of it would be.
        Ok(ids) => {
            return Err(StoreError::Corrupt(format!(
                "the batch INSERT returned {} ids for {} deliveries",
                ids.len(),
                batch.len()
            )))
        }
        Err(StoreError::Conflict(_)) => {}
        Err(err) => return Err(err),
    }
    let inserted = insert_rows_skipping_seen(conn, &columns).await?;
    answer_by_key(conn, batch, inserted).await
}

/// Each input's answer after the batch was stored leaving out request ids seen before.
async fn answer_by_key(
    conn: &mut PgConnection,
    batch: &[NewDelivery],
    mut inserted: Vec<Inserted>,
) -> Result<Vec<Result<InsertOutcome, InsertError>>, StoreError> {
    inserted.sort_by_key(|row| row.id);
    let mut by_key = std::collections::HashMap::new();
    let mut anonymous = std::collections::VecDeque::new();
    for row in &inserted {
        match &row.request_id {
            Some(request_id) => {
                by_key.insert((row.integration_id.clone(), request_id.clone()), row.id);
            }
            None => anonymous.push_back(row.id),
        }
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for delivery in batch {
        let outcome = match &delivery.request_id {
            None => anonymous
                .pop_front()
                .map(InsertOutcome::Stored)
                .ok_or_else(|| InsertError::Failed("a batch row went missing".into())),
            Some(request_id) => {
                let key = (delivery.integration_id.clone(), request_id.clone());
                match by_key.remove(&key) {
                    Some(id) => Ok(InsertOutcome::Stored(id)),
                    // Stored before, or earlier in this same batch.
                    None => match earlier_in_batch(&outcomes, batch, delivery) {
                        Some(id) => Ok(InsertOutcome::Duplicate(id)),
                        None => insert_in(conn, delivery).await.map_err(InsertError::from),
                    },
                }
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// A jsonb element: its version byte and the JSON text, estimated from the kept headers' names
/// and values (escapes aside), with some slack.
fn jsonb_size(headers: &serde_json::Value) -> usize {
    let text = match headers {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(name, value)| name.len() + value.as_str().map_or(32, str::len) + 6)
            .sum::<usize>(),
        _ => 64,
    };
    1 + 2 + text + 16
}

/// A batch's values, column by column, as the multi-row INSERT binds them, each with its
/// encoded size so the statement's arguments are allocated once.
struct Columns<'a> {
    integration_ids: Hinted<&'a [&'a str]>,
    request_ids: Hinted<&'a [Option<&'a str>]>,
    event_keys: Hinted<&'a [&'a str]>,
    headers: Hinted<&'a [sqlx::types::Json<&'a serde_json::Value>]>,
    bodies: Hinted<&'a [&'a [u8]]>,
}

/// A row the batch INSERT stored leaving out request ids seen before.
struct Inserted {
    id: i64,
    integration_id: String,
    request_id: Option<String>,
}

/// Every row of the batch, in order, by id; a request id stored before fails the whole
/// statement with `Conflict`. Only ids come back: with every row stored, their order is the
/// batch's. (Two functions, not one with a flag: the checked query macros need the SQL as a
/// literal.)
async fn insert_rows(
    conn: &mut PgConnection,
    columns: &Columns<'_>,
) -> Result<Vec<i64>, StoreError> {
    sqlx::query_scalar!(
        r#"INSERT INTO deliveries (integration_id, request_id, event_key, headers, body)
           SELECT integration_id, request_id, event_key, headers, body
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])
                WITH ORDINALITY AS t(integration_id, request_id, event_key, headers, body, ord)
           ORDER BY ord
           RETURNING id"#,
        columns.integration_ids as _,
        columns.request_ids as _,
        columns.event_keys as _,
        columns.headers as _,
        columns.bodies as _,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(batch_error)
}

/// The rows of the batch whose request id was not stored before, in order.
async fn insert_rows_skipping_seen(
    conn: &mut PgConnection,
    columns: &Columns<'_>,
) -> Result<Vec<Inserted>, StoreError> {
    sqlx::query_as!(
        Inserted,
        r#"INSERT INTO deliveries (integration_id, request_id, event_key, headers, body)
           SELECT integration_id, request_id, event_key, headers, body
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])
                WITH ORDINALITY AS t(integration_id, request_id, event_key, headers, body, ord)
           ORDER BY ord
           ON CONFLICT (integration_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
           RETURNING id, integration_id, request_id"#,
        columns.integration_ids as _,
        columns.request_ids as _,
        columns.event_keys as _,
        columns.headers as _,
        columns.bodies as _,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(batch_error)
}

fn batch_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            StoreError::NotFound("integration")
        }
        _ => StoreError::unique_as_conflict(err, "request id"),
    }
}

/// The id given to an earlier delivery of the same batch with the same request id.
fn earlier_in_batch(
    outcomes: &[Result<InsertOutcome, InsertError>],
    batch: &[NewDelivery],
    delivery: &NewDelivery,
) -> Option<i64> {
    outcomes.iter().zip(batch).find_map(|(outcome, earlier)| {
        let same = earlier.integration_id == delivery.integration_id
            && earlier.request_id == delivery.request_id;
        match outcome {
            Ok(InsertOutcome::Stored(id) | InsertOutcome::Duplicate(id)) if same => Some(*id),
            _ => None,
        }
    })
}

async fn insert_in(
    conn: &mut PgConnection,
    delivery: &NewDelivery,
) -> Result<InsertOutcome, StoreError> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO deliveries (integration_id, request_id, event_key, headers, body)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (integration_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
           RETURNING id"#,
        delivery.integration_id,
        delivery.request_id,
        delivery.event_key,
        delivery.headers,
        delivery.body.as_ref(),
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            StoreError::NotFound("integration")
        }
        _ => StoreError::from(err),
    })?;
    if let Some(id) = inserted {
        return Ok(InsertOutcome::Stored(id));
    }
    let existing = sqlx::query_scalar!(
        "SELECT id FROM deliveries WHERE integration_id = $1 AND request_id = $2",
        delivery.integration_id,
        delivery.request_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    // The conflicting row may have been deleted in between (its integration removed); then the
    // delivery has nowhere to go and reporting it as a duplicate of nothing would lie.
    existing
        .map(InsertOutcome::Duplicate)
        .ok_or(StoreError::NotFound("integration"))
}

pub async fn list(
    pool: &PgPool,
    integration_id: Option<&str>,
    status: Option<DeliveryStatus>,
    limit: i64,
) -> Result<Vec<DeliverySummary>, StoreError> {
    Ok(sqlx::query_as!(
        DeliverySummary,
        r#"SELECT id, integration_id, request_id, event_key,
                  status AS "status: Text<DeliveryStatus>", attempts, last_error, received_at,
                  processed_at
           FROM deliveries
           WHERE ($1::text IS NULL OR integration_id = $1)
             AND ($2::text IS NULL OR status = $2)
           ORDER BY id DESC
           LIMIT $3"#,
        integration_id,
        status.map(DeliveryStatus::as_str),
        limit,
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Delivery, StoreError> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id, integration_id, request_id, event_key, headers, body,
                  status AS "status: Text<DeliveryStatus>", attempts, last_error, received_at,
                  processed_at, decisions
           FROM deliveries WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("delivery"))
}

/// Queues a `relay:sweep` delivery (body: `body`, the serialized sweep event for `now_ms`)
/// for every integration with an `environment_idle_ttl` and an active non-production
/// environment idle past it (or with no recorded activity), unless one is pending already:
/// relays queue sweeps one at a time (an advisory lock), so several doing this at once still
/// queue one. The planner decides what expires; this only saves planning sweeps that cannot
/// change anything.
pub async fn queue_sweeps(pool: &PgPool, now_ms: i64, body: &[u8]) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    // Waits for a sweep queued by another relay to commit, so the statement below, with a
    // snapshot taken after that, sees it pending.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('relay:queue_sweeps', 8))::text AS locked"
    )
    .fetch_one(&mut *tx)
    .await?;
    let result = sqlx::query!(
        r#"INSERT INTO deliveries (integration_id, event_key, headers, body)
           SELECT i.id, 'relay:sweep', '{"x-relay-source": "sweep"}'::jsonb, $2
           FROM integrations i
           LEFT JOIN delivery_watermarks w ON w.integration_id = i.id
           WHERE i.environment_idle_ttl IS NOT NULL
             AND EXISTS (
                 SELECT 1 FROM environments e
                 WHERE e.integration_id = i.id AND e.kind <> 'production'
                   AND e.status IN ('active', 'failed')
                   AND (e.last_activity_ms IS NULL
                        OR e.last_activity_ms <= $1 - i.environment_idle_ttl * 1000))
             AND NOT EXISTS (
                 SELECT 1 FROM deliveries d
                 WHERE d.integration_id = i.id AND d.event_key = 'relay:sweep'
                   AND d.status = 'pending' AND d.id >= COALESCE(w.below, 0))"#,
        now_ms,
        body,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(result.rows_affected())
}
