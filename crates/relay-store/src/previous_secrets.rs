//! Secrets kept for a grace period after a rotation (one per integration and field: a second
//! rotation within the grace replaces the oldest).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::StoreError;

#[derive(Debug, Clone)]
pub struct PreviousSecret {
    pub ciphertext: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// Keeps `ciphertext` (the secret being replaced) as `field`'s previous value until
/// `expires_at`.
pub async fn keep(
    pool: &PgPool,
    integration_id: &str,
    field: &str,
    ciphertext: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"INSERT INTO previous_secrets (integration_id, field, ciphertext, expires_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (integration_id, field) DO UPDATE SET
               ciphertext = EXCLUDED.ciphertext, expires_at = EXCLUDED.expires_at,
               created_at = now()"#,
        integration_id,
        field,
        ciphertext,
        expires_at,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The previous value of `field`, while its grace lasts.
pub async fn get(
    pool: &PgPool,
    integration_id: &str,
    field: &str,
) -> Result<Option<PreviousSecret>, StoreError> {
    Ok(sqlx::query_as!(
        PreviousSecret,
        r#"SELECT ciphertext, expires_at FROM previous_secrets
           WHERE integration_id = $1 AND field = $2 AND expires_at > now()"#,
        integration_id,
        field,
    )
    .fetch_optional(pool)
    .await?)
}

/// Forgets previous secrets whose grace has ended.
pub async fn prune_expired(pool: &PgPool) -> Result<u64, StoreError> {
    Ok(
        sqlx::query!("DELETE FROM previous_secrets WHERE expires_at <= now()")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
