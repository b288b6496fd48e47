//! Circuit breaker rows: one per integration and target, read before each guarded call and
//! changed in a transaction after it (see `relay::worker::circuit` for the rules).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::{CircuitState, StoreError, Text};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitRow {
    pub integration_id: String,
    pub target: String,
    pub state: CircuitState,
    pub consecutive_failures: i32,
    pub probe_interval_ms: Option<i64>,
    pub next_probe_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(
    pool: &PgPool,
    integration_id: &str,
    target: &str,
) -> Result<Option<CircuitRow>, StoreError> {
    Ok(sqlx::query_as!(
        CircuitRow,
        r#"SELECT integration_id, target, state AS "state: Text<CircuitState>", consecutive_failures,
                  probe_interval_ms, next_probe_at, opened_at, last_error, updated_at
           FROM circuits WHERE integration_id = $1 AND target = $2"#,
        integration_id,
        target
    )
    .fetch_optional(pool)
    .await?)
}

/// Every circuit, or one integration's.
pub async fn list(
    pool: &PgPool,
    integration_id: Option<&str>,
) -> Result<Vec<CircuitRow>, StoreError> {
    Ok(sqlx::query_as!(
        CircuitRow,
        r#"SELECT integration_id, target, state AS "state: Text<CircuitState>", consecutive_failures,
                  probe_interval_ms, next_probe_at, opened_at, last_error, updated_at
           FROM circuits WHERE ($1::text IS NULL OR integration_id = $1)
           ORDER BY integration_id, target"#,
        integration_id
    )
    .fetch_all(pool)
    .await?)
}

/// Makes this caller the probe of an open circuit whose probe is due (or whose last probe
/// was lost): the circuit turns half open until `hold_until`. False when another caller got
/// there first or the probe is not due.
pub async fn take_probe(
    pool: &PgPool,
    integration_id: &str,
    target: &str,
    hold_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query!(
        r#"UPDATE circuits SET state = 'half_open', next_probe_at = $3, updated_at = now()
           WHERE integration_id = $1 AND target = $2 AND state IN ('open', 'half_open')
             AND next_probe_at <= now()"#,
        integration_id,
        target,
        hold_until,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Reads the circuit under a row lock, lets `change` compute its next value from the current
/// one (`None`: no row yet) and stores it. Returns the previous and the new row.
pub async fn change(
    pool: &PgPool,
    integration_id: &str,
    target: &str,
    change: impl FnOnce(Option<&CircuitRow>) -> CircuitRow,
) -> Result<(Option<CircuitRow>, CircuitRow), StoreError> {
    let mut tx = pool.begin().await?;
    let before = sqlx::query_as!(
        CircuitRow,
        r#"SELECT integration_id, target, state AS "state: Text<CircuitState>", consecutive_failures,
                  probe_interval_ms, next_probe_at, opened_at, last_error, updated_at
           FROM circuits WHERE integration_id = $1 AND target = $2 FOR UPDATE"#,
        integration_id,
        target
    )
    .fetch_optional(&mut *tx)
    .await?;
    let next = change(before.as_ref());
    let after = sqlx::query_as!(
        CircuitRow,
        r#"INSERT INTO circuits (integration_id, target, state, consecutive_failures,
                                 probe_interval_ms, next_probe_at, opened_at, last_error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (integration_id, target) DO UPDATE SET
               state = EXCLUDED.state, consecutive_failures = EXCLUDED.consecutive_failures,
               probe_interval_ms = EXCLUDED.probe_interval_ms,
               next_probe_at = EXCLUDED.next_probe_at, opened_at = EXCLUDED.opened_at,
               last_error = EXCLUDED.last_error, updated_at = now()
           RETURNING integration_id, target, state AS "state: Text<CircuitState>",
                     consecutive_failures, probe_interval_ms, next_probe_at, opened_at,
                     last_error, updated_at"#,
        integration_id,
        target,
        next.state.as_str(),
        next.consecutive_failures,
        next.probe_interval_ms,
        next.next_probe_at,
        next.opened_at,
        next.last_error.as_deref().map(crate::queue::storable_text),
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((before, after))
}

/// Puts a claimed job back in its lane until `until` without counting the attempt: it waited
/// for an open circuit, it did not fail. (Kept here rather than in `jobs` because only a
/// circuit makes a job wait like this.)
pub async fn defer_job(
    pool: &PgPool,
    job: &crate::jobs::ClaimedJob,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query!(
        r#"UPDATE jobs
           SET state = 'pending', attempts = GREATEST(attempts - 1, 0), run_after = $3,
               locked_until = NULL, updated_at = now()
           WHERE id = $1 AND attempts = $2 AND state = 'running'"#,
        job.id,
        job.attempt,
        until,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Once a circuit closes, the jobs that waited for it become due now (in their lanes' order)
/// instead of at the probe time they were deferred to; the runners are woken.
pub async fn release_jobs(
    pool: &PgPool,
    integration_id: &str,
    kinds: &[relay_core::JobKind],
) -> Result<u64, StoreError> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
    let mut tx = pool.begin().await?;
    let released = sqlx::query!(
        r#"UPDATE jobs SET run_after = now(), updated_at = now()
           WHERE integration_id = $1 AND kind = ANY($2) AND state = 'pending'
             AND run_after > now()"#,
        integration_id,
        &kinds,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!("SELECT pg_notify('relay_jobs', '')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(released)
}
