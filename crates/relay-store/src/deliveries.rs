//! Deliveries: every webhook the relay acknowledged, stored before the acknowledgement.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::StoreError;

#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub integration_id: &'a str,
    pub request_id: Option<&'a str>,
    pub event_key: &'a str,
    pub headers: serde_json::Value,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Newly stored and committed.
    Stored(i64),
    /// The same request id was stored before; nothing was written.
    Duplicate(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliverySummary {
    pub id: i64,
    pub integration_id: String,
    pub request_id: Option<String>,
    pub event_key: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub integration_id: String,
    pub request_id: Option<String>,
    pub event_key: String,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub decisions: Option<serde_json::Value>,
}

/// Stores a delivery in its own transaction (autocommit): when this returns `Stored`, the row
/// is durable. A request id seen before for the same integration returns `Duplicate`.
pub async fn insert(
    pool: &PgPool,
    delivery: &NewDelivery<'_>,
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
        delivery.body,
    )
    .fetch_optional(pool)
    .await?;
    if let Some(id) = inserted {
        return Ok(InsertOutcome::Stored(id));
    }
    let existing = sqlx::query_scalar!(
        "SELECT id FROM deliveries WHERE integration_id = $1 AND request_id = $2",
        delivery.integration_id,
        delivery.request_id,
    )
    .fetch_optional(pool)
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
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliverySummary>, StoreError> {
    Ok(sqlx::query_as!(
        DeliverySummary,
        r#"SELECT id, integration_id, request_id, event_key, status, attempts, last_error,
                  received_at, processed_at
           FROM deliveries
           WHERE ($1::text IS NULL OR integration_id = $1)
             AND ($2::text IS NULL OR status = $2)
           ORDER BY id DESC
           LIMIT $3"#,
        integration_id,
        status,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Delivery, StoreError> {
    sqlx::query_as!(
        Delivery,
        r#"SELECT id, integration_id, request_id, event_key, headers, body, status, attempts,
                  last_error, received_at, processed_at, decisions
           FROM deliveries WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("delivery"))
}

pub async fn count_for_integration(pool: &PgPool, integration_id: &str) -> Result<i64, StoreError> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM deliveries WHERE integration_id = $1"#,
        integration_id
    )
    .fetch_one(pool)
    .await?;
    Ok(count)
}
