//! Web console sessions. The caller hashes the cookie value; this module never sees it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::StoreError;

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    /// The message left by the previous action, if any: (`info` or `error`, text).
    pub flash: Option<(String, String)>,
}

/// Stores a new session and drops the expired ones (logins are rare, so this is where the
/// table gets swept).
pub async fn create(
    pool: &PgPool,
    id_hash: &[u8],
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM console_sessions WHERE expires_at <= now()")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "INSERT INTO console_sessions (id_hash, csrf_token, expires_at) VALUES ($1, $2, $3)",
        id_hash,
        csrf_token,
        expires_at,
    )
    .execute(&mut *tx)
    .await
    .map_err(|err| StoreError::unique_as_conflict(err, "console session"))?;
    tx.commit().await?;
    Ok(())
}

/// The unexpired session with this hash, leaving its flash message in place.
pub async fn get(pool: &PgPool, id_hash: &[u8]) -> Result<Option<ConsoleSession>, StoreError> {
    let row = sqlx::query!(
        r#"SELECT csrf_token, expires_at, flash_kind, flash_message FROM console_sessions
           WHERE id_hash = $1 AND expires_at > now()"#,
        id_hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ConsoleSession {
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
        flash: r.flash_kind.zip(r.flash_message),
    }))
}

/// The unexpired session with this hash, taking its flash message (shown once).
pub async fn take(pool: &PgPool, id_hash: &[u8]) -> Result<Option<ConsoleSession>, StoreError> {
    let row = sqlx::query!(
        r#"WITH old AS (
               SELECT id_hash, flash_kind, flash_message FROM console_sessions
               WHERE id_hash = $1 AND expires_at > now()
               FOR UPDATE)
           UPDATE console_sessions s SET flash_kind = NULL, flash_message = NULL
           FROM old WHERE s.id_hash = old.id_hash
           RETURNING s.csrf_token, s.expires_at, old.flash_kind, old.flash_message"#,
        id_hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ConsoleSession {
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
        flash: r.flash_kind.zip(r.flash_message),
    }))
}

/// Leaves a message for the next page of this session; `kind` is `info` or `error`.
pub async fn set_flash(
    pool: &PgPool,
    id_hash: &[u8],
    kind: &str,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE console_sessions SET flash_kind = $2, flash_message = $3 WHERE id_hash = $1",
        id_hash,
        kind,
        message,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends the session; the cookie that named it no longer works anywhere.
pub async fn delete(pool: &PgPool, id_hash: &[u8]) -> Result<(), StoreError> {
    sqlx::query!("DELETE FROM console_sessions WHERE id_hash = $1", id_hash)
        .execute(pool)
        .await?;
    Ok(())
}
