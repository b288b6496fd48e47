//! The activity log of an integration: its deliveries and jobs (read from their own tables, so
//! ingest writes nothing more), the entries that have no table of their own (circuit breaker
//! changes, in `activities`) and every activity's timestamped lines (`activity_lines`).
//!
//! An activity's id is `<source>-<row id>`: `delivery-12`, `job-7`, `circuit-3`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::StoreError;

/// One activity in the hosted CLI's shape; `subject`, `status`, `detail`, `attempts` and
/// `reference` are the source row's own words (event key or job kind, its status, its last
/// error or description, its request id or lane) for the one-line description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub id: String,
    /// `delivery`, `reconcile`, `job` or `circuit`.
    pub kind: String,
    /// `pending`, `in_progress` or `complete`.
    pub state: String,
    /// `success` or `failure` once complete.
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub subject: String,
    pub status: String,
    pub detail: Option<String>,
    pub attempts: i32,
    pub reference: Option<String>,
}

/// What to list: the filters of `integration:activity:list`, and the retention window.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<String>,
    pub result: Option<String>,
    /// Only activities created since (the retention).
    pub since: Option<DateTime<Utc>>,
    /// One row only (its numeric id), for `integration:activity:log`.
    pub only: Option<i64>,
    pub limit: i64,
}

/// Deliveries as activities, newest first.
pub async fn deliveries(
    pool: &PgPool,
    integration_id: &str,
    filter: &Filter,
) -> Result<Vec<ActivityRow>, StoreError> {
    Ok(sqlx::query_as!(
        ActivityRow,
        r#"SELECT id AS "id!", kind AS "kind!", state AS "state!", result, created_at AS "created_at!",
                  completed_at, subject AS "subject!", status AS "status!", detail,
                  attempts AS "attempts!", reference
           FROM (
               SELECT d.id AS n, 'delivery-' || d.id AS id, 'delivery' AS kind,
                      CASE WHEN d.status = 'pending' AND d.attempts = 0 THEN 'pending'
                           WHEN d.status = 'pending' THEN 'in_progress'
                           ELSE 'complete' END AS state,
                      CASE d.status WHEN 'failed' THEN 'failure' WHEN 'pending' THEN NULL
                                    ELSE 'success' END AS result,
                      d.received_at AS created_at,
                      CASE WHEN d.status <> 'pending' THEN COALESCE(d.processed_at, d.updated_at)
                      END AS completed_at,
                      d.event_key AS subject, d.status, d.last_error AS detail, d.attempts,
                      d.request_id AS reference
               FROM deliveries d
               WHERE d.integration_id = $1
                 AND ($2::timestamptz IS NULL OR d.received_at >= $2)
                 AND ($3::bigint IS NULL OR d.id = $3)
           ) a
           WHERE ($4::text IS NULL OR state = $4) AND ($5::text IS NULL OR result = $5)
           ORDER BY n DESC
           LIMIT $6"#,
        integration_id,
        filter.since,
        filter.only,
        filter.state,
        filter.result,
        filter.limit,
    )
    .fetch_all(pool)
    .await?)
}

/// Jobs as activities (`reconcile` for reconciliations, `job` for the rest), newest first.
pub async fn jobs(
    pool: &PgPool,
    integration_id: &str,
    kind: Option<&str>,
    filter: &Filter,
) -> Result<Vec<ActivityRow>, StoreError> {
    Ok(sqlx::query_as!(
        ActivityRow,
        r#"SELECT id AS "id!", kind AS "kind!", state AS "state!", result, created_at AS "created_at!",
                  completed_at, subject AS "subject!", status AS "status!", detail,
                  attempts AS "attempts!", reference
           FROM (
               SELECT j.id AS n, 'job-' || j.id AS id,
                      CASE WHEN j.kind = 'reconcile' THEN 'reconcile' ELSE 'job' END AS kind,
                      CASE WHEN j.state = 'pending' AND j.attempts = 0 THEN 'pending'
                           WHEN j.state IN ('pending', 'running') THEN 'in_progress'
                           ELSE 'complete' END AS state,
                      CASE j.state WHEN 'succeeded' THEN 'success' WHEN 'dead' THEN 'failure'
                      END AS result,
                      j.created_at, j.completed_at, j.kind AS subject, j.state AS status,
                      j.last_error AS detail, j.attempts, j.queue_key AS reference
               FROM jobs j
               WHERE j.integration_id = $1
                 AND ($2::timestamptz IS NULL OR j.created_at >= $2)
                 AND ($3::bigint IS NULL OR j.id = $3)
           ) a
           WHERE ($4::text IS NULL OR kind = $4) AND ($5::text IS NULL OR state = $5)
             AND ($6::text IS NULL OR result = $6)
           ORDER BY n DESC
           LIMIT $7"#,
        integration_id,
        filter.since,
        filter.only,
        kind,
        filter.state,
        filter.result,
        filter.limit,
    )
    .fetch_all(pool)
    .await?)
}

/// The logged activities (circuit changes), newest first. They are complete when written.
pub async fn logged(
    pool: &PgPool,
    integration_id: &str,
    filter: &Filter,
) -> Result<Vec<ActivityRow>, StoreError> {
    if filter.state.as_deref().is_some_and(|s| s != "complete") {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        ActivityRow,
        r#"SELECT type || '-' || id AS "id!", type AS "kind!", 'complete' AS "state!", result,
                  created_at, created_at AS completed_at, type AS "subject!",
                  'complete' AS "status!", description AS detail, 0 AS "attempts!",
                  NULL::text AS reference
           FROM activities
           WHERE integration_id = $1
             AND ($2::timestamptz IS NULL OR created_at >= $2)
             AND ($3::bigint IS NULL OR id = $3)
             AND ($4::text IS NULL OR result = $4)
           ORDER BY id DESC
           LIMIT $5"#,
        integration_id,
        filter.since,
        filter.only,
        filter.result,
        filter.limit,
    )
    .fetch_all(pool)
    .await?)
}

/// Writes a logged activity (a circuit change) with its first line; returns its id
/// (`circuit-<n>`).
pub async fn record(
    pool: &PgPool,
    integration_id: &str,
    kind: &str,
    result: Option<&str>,
    description: &str,
    lines: &[String],
) -> Result<String, StoreError> {
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        r#"INSERT INTO activities (integration_id, type, result, description)
           VALUES ($1, $2, $3, $4) RETURNING id"#,
        integration_id,
        kind,
        result,
        crate::queue::storable_text(description),
    )
    .fetch_one(&mut *tx)
    .await?;
    let activity = format!("{kind}-{id}");
    for line in lines {
        append_line_in(&mut tx, integration_id, &activity, line).await?;
    }
    tx.commit().await?;
    Ok(activity)
}

/// Appends one timestamped line to an activity's log (a job attempt's outcome, ...).
pub async fn append_line(
    pool: &PgPool,
    integration_id: &str,
    activity: &str,
    line: &str,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    append_line_in(&mut conn, integration_id, activity, line).await
}

async fn append_line_in(
    conn: &mut sqlx::PgConnection,
    integration_id: &str,
    activity: &str,
    line: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO activity_lines (integration_id, activity, line) VALUES ($1, $2, $3)",
        integration_id,
        activity,
        crate::queue::storable_text(line),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An activity's stored lines, oldest first.
pub async fn lines(
    pool: &PgPool,
    integration_id: &str,
    activity: &str,
) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT at, line FROM activity_lines
           WHERE integration_id = $1 AND activity = $2 ORDER BY id"#,
        integration_id,
        activity,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.at, r.line)).collect())
}

/// Deletes log entries and lines older than `before`, a bounded batch at a time so a large
/// backlog never holds long locks. Returns how many rows went.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut removed = 0;
    loop {
        let lines = sqlx::query!(
            r#"DELETE FROM activity_lines WHERE id IN (
                   SELECT id FROM activity_lines WHERE at < $1 LIMIT 5000)"#,
            before
        )
        .execute(pool)
        .await?
        .rows_affected();
        let entries = sqlx::query!(
            r#"DELETE FROM activities WHERE id IN (
                   SELECT id FROM activities WHERE created_at < $1 LIMIT 5000)"#,
            before
        )
        .execute(pool)
        .await?
        .rows_affected();
        removed += lines + entries;
        if lines < 5000 && entries < 5000 {
            return Ok(removed);
        }
    }
}
