//! Read queries of the web console: the overview's aggregates and the paged lists.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use relay_core::{IntegrationType, JobKind};

use crate::deliveries::DeliverySummary;
use crate::jobs::JobRow;
use crate::{DeliveryStatus, JobState, StoreError, Text};

/// One integration on the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationOverview {
    pub id: String,
    pub kind: IntegrationType,
    pub repository: String,
    pub last_delivery: Option<DeliveryMark>,
    /// Deliveries parked as failed during the last hour.
    pub failed_last_hour: i64,
    /// Jobs that died during the last hour.
    pub dead_jobs_last_hour: i64,
    pub oldest_pending: Option<DeliveryMark>,
}

/// Enough of a delivery to link to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryMark {
    pub id: i64,
    pub event_key: String,
    pub status: DeliveryStatus,
    pub received_at: DateTime<Utc>,
}

pub async fn overview(pool: &PgPool) -> Result<Vec<IntegrationOverview>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT i.id, i.type AS "kind: Text<IntegrationType>", i.repository,
                  last.id AS "last_id?", last.event_key AS "last_event_key?",
                  last.status AS "last_status?: Text<DeliveryStatus>", last.received_at AS "last_received_at?",
                  (SELECT count(*) FROM deliveries f
                   WHERE f.integration_id = i.id AND f.last_error IS NOT NULL
                     AND f.status = 'failed'
                     AND f.updated_at > now() - interval '1 hour') AS "failed!",
                  (SELECT count(*) FROM jobs j
                   WHERE j.integration_id = i.id AND j.state = 'dead'
                     AND j.completed_at > now() - interval '1 hour') AS "dead!",
                  old.id AS "old_id?", old.event_key AS "old_event_key?",
                  old.status AS "old_status?: Text<DeliveryStatus>", old.received_at AS "old_received_at?"
           FROM integrations i
           LEFT JOIN LATERAL (
               SELECT id, event_key, status, received_at FROM deliveries
               WHERE integration_id = i.id ORDER BY id DESC LIMIT 1) last ON true
           LEFT JOIN delivery_watermarks w ON w.integration_id = i.id
           LEFT JOIN LATERAL (
               SELECT id, event_key, status, received_at FROM deliveries
               WHERE integration_id = i.id AND status = 'pending' AND id >= COALESCE(w.below, 0)
               ORDER BY id LIMIT 1) old ON true
           ORDER BY i.id"#
    )
    .fetch_all(pool)
    .await?;
    let mark = |id: Option<i64>, key: Option<String>, status: Option<Text<DeliveryStatus>>, at| {
        Some(DeliveryMark {
            id: id?,
            event_key: key?,
            status: status?.0,
            received_at: at?,
        })
    };
    Ok(rows
        .into_iter()
        .map(|r| IntegrationOverview {
            last_delivery: mark(
                r.last_id,
                r.last_event_key,
                r.last_status,
                r.last_received_at,
            ),
            oldest_pending: mark(r.old_id, r.old_event_key, r.old_status, r.old_received_at),
            id: r.id,
            kind: r.kind.0,
            repository: r.repository,
            failed_last_hour: r.failed,
            dead_jobs_last_hour: r.dead,
        })
        .collect())
}

/// Filters of the deliveries list; `before` pages (ids below it, newest first).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter<'a> {
    pub integration_id: Option<&'a str>,
    pub status: Option<DeliveryStatus>,
    pub event_key: Option<&'a str>,
    pub before: Option<i64>,
}

pub async fn deliveries(
    pool: &PgPool,
    filter: &DeliveryFilter<'_>,
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
             AND ($3::text IS NULL OR event_key = $3)
             AND ($4::bigint IS NULL OR id < $4)
           ORDER BY id DESC
           LIMIT $5"#,
        filter.integration_id,
        filter.status.map(DeliveryStatus::as_str),
        filter.event_key,
        filter.before,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

/// Filters of the jobs list; `before` pages (ids below it, newest first).
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    pub integration_id: Option<&'a str>,
    pub state: Option<JobState>,
    pub before: Option<i64>,
}

pub async fn jobs(
    pool: &PgPool,
    filter: &JobFilter<'_>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    Ok(sqlx::query_as!(
        JobRow,
        r#"SELECT id, integration_id, delivery_id, kind AS "kind: Text<JobKind>", queue_key,
                  payload, state AS "state: Text<JobState>", attempts, run_after, last_error,
                  created_at, completed_at
           FROM jobs
           WHERE ($1::text IS NULL OR integration_id = $1)
             AND ($2::text IS NULL OR state = $2)
             AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC
           LIMIT $4"#,
        filter.integration_id,
        filter.state.map(JobState::as_str),
        filter.before,
        limit,
    )
    .fetch_all(pool)
    .await?)
}
