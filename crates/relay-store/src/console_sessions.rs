//! Web console sessions. The caller hashes the cookie value; this module never sees it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::{StoreError, Text};

/// `console_sessions.flash_kind`: how the message left for the next page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashKind {
    Info,
    Error,
}

relay_core::text_enum!(FlashKind, "flash kind", {
    Info => "info",
    Error => "error",
});

/// The message the previous action left for the next page, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
    /// A console path the message refers to ("delivery 12"), shown as a link after it.
    pub href: Option<String>,
}

impl Flash {
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Info,
            message: message.into(),
            href: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Error,
            message: message.into(),
            href: None,
        }
    }

    pub fn with_link(self, href: impl Into<String>) -> Self {
        Self {
            href: Some(href.into()),
            ..self
        }
    }

    pub fn is_error(&self) -> bool {
        self.kind == FlashKind::Error
    }
}

fn flash(
    kind: Option<Text<FlashKind>>,
    message: Option<String>,
    href: Option<String>,
) -> Option<Flash> {
    Some(Flash {
        kind: kind?.0,
        message: message?,
        href,
    })
}

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    /// The message left by the previous action, if any.
    pub flash: Option<Flash>,
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
        r#"SELECT csrf_token, expires_at, flash_kind AS "flash_kind: Text<FlashKind>",
                  flash_message, flash_href
           FROM console_sessions
           WHERE id_hash = $1 AND expires_at > now()"#,
        id_hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ConsoleSession {
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
        flash: flash(r.flash_kind, r.flash_message, r.flash_href),
    }))
}

/// The unexpired session with this hash, taking its flash message (shown once).
pub async fn take(pool: &PgPool, id_hash: &[u8]) -> Result<Option<ConsoleSession>, StoreError> {
    let row = sqlx::query!(
        r#"WITH old AS (
               SELECT id_hash, flash_kind, flash_message, flash_href FROM console_sessions
               WHERE id_hash = $1 AND expires_at > now()
               FOR UPDATE)
           UPDATE console_sessions s
           SET flash_kind = NULL, flash_message = NULL, flash_href = NULL
           FROM old WHERE s.id_hash = old.id_hash
           RETURNING s.csrf_token, s.expires_at,
                     old.flash_kind AS "flash_kind: Text<FlashKind>", old.flash_message,
                     old.flash_href"#,
        id_hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ConsoleSession {
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
        flash: flash(r.flash_kind, r.flash_message, r.flash_href),
    }))
}

/// Leaves a message for the next page of this session.
pub async fn set_flash(pool: &PgPool, id_hash: &[u8], flash: &Flash) -> Result<(), StoreError> {
    sqlx::query!(
        r#"UPDATE console_sessions SET flash_kind = $2, flash_message = $3, flash_href = $4
           WHERE id_hash = $1"#,
        id_hash,
        flash.kind.as_str(),
        flash.message,
        flash.href,
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
