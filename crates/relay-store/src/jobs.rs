//! Jobs decided by the planner, for the job runner.

use chrono::{DateTime, Utc};
use relay_core::JobSpec;
use sqlx::{PgConnection, PgPool};

use crate::StoreError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub integration_id: String,
    pub delivery_id: Option<i64>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i32,
    pub run_after: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_all(
    conn: &mut PgConnection,
    integration_id: &str,
    delivery_id: Option<i64>,
    jobs: &[JobSpec],
) -> Result<(), StoreError> {
    for job in jobs {
        let payload = serde_json::to_value(job)
            .map_err(|e| StoreError::Corrupt(format!("job cannot be encoded: {e}")))?;
        sqlx::query!(
            "INSERT INTO jobs (integration_id, delivery_id, kind, payload) VALUES ($1, $2, $3, $4)",
            integration_id,
            delivery_id,
            job.kind(),
            payload,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn list(
    pool: &PgPool,
    integration_id: Option<&str>,
    delivery_id: Option<i64>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<JobRow>, StoreError> {
    Ok(sqlx::query_as!(
        JobRow,
        r#"SELECT id, integration_id, delivery_id, kind, payload, state, attempts, run_after,
                  last_error, created_at
           FROM jobs
           WHERE ($1::text IS NULL OR integration_id = $1)
             AND ($2::bigint IS NULL OR delivery_id = $2)
             AND ($3::text IS NULL OR state = $3)
           ORDER BY id
           LIMIT $4"#,
        integration_id,
        delivery_id,
        state,
        limit,
    )
    .fetch_all(pool)
    .await?)
}
