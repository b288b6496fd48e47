//! Jobs decided by the planner, and the queue the job runner claims them from.
//!
//! Jobs with the same `queue_key` run one at a time in id order (see [`queue_key`]); a
//! running job holds a lease (`locked_until`) that its runner renews, so the jobs of a relay
//! that died are claimed again once the lease runs out. Completion checks the attempt number,
//! so a runner that lost its lease cannot complete a job someone else has re-claimed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use relay_core::{JobKind, JobSpec};
use sqlx::{PgConnection, PgPool};

use crate::{JobState, StoreError, Text};

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub integration_id: String,
    pub delivery_id: Option<i64>,
    pub kind: JobKind,
    pub queue_key: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub attempts: i32,
    pub run_after: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The lane a job runs in: git work per integration (one mirror, one job at a time), the
/// deploy side per environment (events for one environment stay in order), reconciliation per
/// integration, Argo CD refreshes (see [`JobSpec::RefreshApplicationSets`]).
pub fn queue_key(integration_id: &str, job: &JobSpec) -> String {
    match job {
        JobSpec::MirrorBranch { .. }
        | JobSpec::DeleteRef { .. }
        | JobSpec::Undeploy { .. }
        | JobSpec::BuildPullRequest { .. } => {
            format!("git:{integration_id}")
        }
        JobSpec::Reconcile { .. } => format!("reconcile:{integration_id}"),
        // The first attempt waits for the git work queued before it, so Argo CD reads
        // parameters whose refs are already on the deploy remote; retries get their own lane.
        JobSpec::RefreshApplicationSets { retry: false } => format!("git:{integration_id}"),
        JobSpec::RefreshApplicationSets { retry: true } => format!("argocd:{integration_id}"),
        // Statuses of one environment in order, apart from its deploy-side events so a
        // struggling Bitbucket API does not hold those back.
        JobSpec::BuildStatus { environment, .. } => {
            format!("status:{integration_id}:{environment}")
        }
        // One comment per environment, edited in order; apart from statuses so a comment
        // API in trouble holds back neither.
        JobSpec::PullRequestComment { environment, .. } => {
            format!("comment:{integration_id}:{environment}")
        }
        JobSpec::Deploy { environment, .. }
        | JobSpec::SyncFromParent { environment, .. }
        | JobSpec::NotifyDeploySide { environment, .. } => {
            format!("deploy:{integration_id}:{environment}")
        }
    }
}

pub async fn insert_all(
    conn: &mut PgConnection,
    integration_id: &str,
    delivery_id: Option<i64>,
    jobs: &[JobSpec],
) -> Result<(), StoreError> {
    let tagged: Vec<(Option<i64>, &JobSpec)> = jobs.iter().map(|job| (delivery_id, job)).collect();
    insert_tagged(conn, integration_id, &tagged).await
}

/// Inserts jobs of several deliveries (each tagged with its delivery) in one statement.
pub async fn insert_tagged(
    conn: &mut PgConnection,
    integration_id: &str,
    jobs: &[(Option<i64>, &JobSpec)],
) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let mut deliveries = Vec::with_capacity(jobs.len());
    let mut kinds = Vec::with_capacity(jobs.len());
    let mut queues = Vec::with_capacity(jobs.len());
    let mut payloads = Vec::with_capacity(jobs.len());
    for (delivery_id, job) in jobs {
        deliveries.push(*delivery_id);
        kinds.push(job.kind().as_str());
        queues.push(queue_key(integration_id, job));
        payloads.push(
            serde_json::to_value(job)
                .map_err(|e| StoreError::Corrupt(format!("job cannot be encoded: {e}")))?,
        );
    }
    sqlx::query!(
        r#"INSERT INTO jobs (integration_id, delivery_id, kind, queue_key, payload)
           SELECT $1, delivery_id, kind, queue_key, payload
           FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY
                AS t(delivery_id, kind, queue_key, payload, ord)
           ORDER BY ord"#,
        integration_id,
        &deliveries as &[Option<i64>],
        &kinds as &[&str],
        &queues,
        &payloads,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A claimed job. `attempt` identifies this claim for completion.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub integration_id: String,
    pub delivery_id: Option<i64>,
    pub kind: JobKind,
    pub payload: serde_json::Value,
    pub attempt: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims the oldest runnable job of any lane whose head it is, among `kinds`.
pub async fn claim(
    pool: &PgPool,
    kinds: &[JobKind],
    lease: Duration,
) -> Result<Option<ClaimedJob>, StoreError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let row = sqlx::query!(
        r#"UPDATE jobs
           SET state = 'running', attempts = attempts + 1, updated_at = now(),
               locked_until = now() + make_interval(secs => $2::bigint / 1000.0)
           WHERE id = (
               SELECT j.id FROM jobs j
               WHERE j.kind = ANY($1)
                 AND ((j.state = 'pending' AND j.run_after <= now())
                      OR (j.state = 'running' AND j.locked_until < now()))
                 AND NOT EXISTS (
                     SELECT 1 FROM jobs o
                     WHERE o.queue_key = j.queue_key AND o.id < j.id
                       AND o.state IN ('pending', 'running'))
               ORDER BY j.id
               LIMIT 1
               FOR UPDATE SKIP LOCKED)
           RETURNING id, integration_id, delivery_id, kind AS "kind: Text<JobKind>", payload,
                     attempts, created_at"#,
        &kinds as &[&str],
        lease_ms,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ClaimedJob {
        id: r.id,
        integration_id: r.integration_id,
        delivery_id: r.delivery_id,
        kind: r.kind.0,
        payload: r.payload,
        attempt: r.attempts,
        created_at: r.created_at,
    }))
}

/// Extends the lease; false when the claim was lost (the lease ran out and someone else
/// took the job).
pub async fn renew(pool: &PgPool, job: &ClaimedJob, lease: Duration) -> Result<bool, StoreError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let updated = sqlx::query!(
        "UPDATE jobs SET locked_until = now() + make_interval(secs => $3::bigint / 1000.0)
         WHERE id = $1 AND attempts = $2 AND state = 'running'",
        job.id,
        job.attempt,
        lease_ms,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn succeed(pool: &PgPool, job: &ClaimedJob) -> Result<bool, StoreError> {
    let updated = sqlx::query!(
        "UPDATE jobs SET state = 'succeeded', locked_until = NULL, last_error = NULL,
                completed_at = now(), updated_at = now()
         WHERE id = $1 AND attempts = $2 AND state = 'running'",
        job.id,
        job.attempt,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Records a failure: retried after `retry_in`, or dead (dead-lettered, visible, retryable by
/// hand) when `dead` is true. Returns the new state, `None` when the claim was lost.
pub async fn fail(
    pool: &PgPool,
    job: &ClaimedJob,
    error: &str,
    retry_in: Duration,
    dead: bool,
) -> Result<Option<JobState>, StoreError> {
    let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    let state = sqlx::query_scalar!(
        r#"UPDATE jobs
           SET state = CASE WHEN $4 THEN 'dead' ELSE 'pending' END,
               last_error = $3, locked_until = NULL, updated_at = now(),
               run_after = now() + make_interval(secs => $5::bigint / 1000.0),
               completed_at = CASE WHEN $4 THEN now() END
           WHERE id = $1 AND attempts = $2 AND state = 'running'
           RETURNING state AS "state: Text<JobState>""#,
        job.id,
        job.attempt,
        error,
        dead,
        retry_ms,
    )
    .fetch_optional(pool)
    .await?;
    Ok(state.map(|s| s.0))
}

/// Puts a dead (or any) job back in its lane with fresh attempts (`job:retry`).
pub async fn retry(pool: &PgPool, id: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query!(
        "UPDATE jobs SET state = 'pending', attempts = 0, run_after = now(), last_error = NULL,
                locked_until = NULL, completed_at = NULL, updated_at = now()
         WHERE id = $1 AND state <> 'running'",
        id
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        let exists = sqlx::query_scalar!("SELECT state FROM jobs WHERE id = $1", id)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match exists {
            Some(_) => StoreError::Conflict("a running job"),
            None => StoreError::NotFound("job"),
        });
    }
    sqlx::query!("SELECT pg_notify('relay_jobs', '')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(
    pool: &PgPool,
    integration_id: Option<&str>,
    delivery_id: Option<i64>,
    state: Option<JobState>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    Ok(sqlx::query_as!(
        JobRow,
        r#"SELECT id, integration_id, delivery_id, kind AS "kind: Text<JobKind>", queue_key,
                  payload, state AS "state: Text<JobState>", attempts, run_after, last_error,
                  created_at, completed_at
           FROM jobs
           WHERE ($1::text IS NULL OR integration_id = $1)
             AND ($2::bigint IS NULL OR delivery_id = $2)
             AND ($3::text IS NULL OR state = $3)
           ORDER BY id
           LIMIT $4"#,
        integration_id,
        delivery_id,
        state.map(JobState::as_str),
        limit,
    )
    .fetch_all(pool)
    .await?)
}

/// Inserts one job outside a delivery (the runner's follow-ups, e.g. a `failed` event).
pub async fn enqueue(
    pool: &PgPool,
    integration_id: &str,
    delivery_id: Option<i64>,
    job: &JobSpec,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    insert_all(
        &mut conn,
        integration_id,
        delivery_id,
        std::slice::from_ref(job),
    )
    .await
}

/// Queues a reconciliation for every integration that has none pending or running (the
/// periodic resync; several relays doing this at once queue at most a few extra).
pub async fn enqueue_periodic_reconciles(pool: &PgPool) -> Result<u64, StoreError> {
    let result = sqlx::query!(
        r#"INSERT INTO jobs (integration_id, kind, queue_key, payload)
           SELECT i.id, 'reconcile', 'reconcile:' || i.id, '{"kind": "reconcile", "reason": "periodic resync"}'::jsonb
           FROM integrations i
           WHERE NOT EXISTS (
               SELECT 1 FROM jobs j
               WHERE j.integration_id = i.id AND j.kind = 'reconcile' AND j.state IN ('pending', 'running'))"#
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
