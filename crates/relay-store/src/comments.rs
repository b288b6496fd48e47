//! The one pull-request comment per environment: its id (and, on Server, its version) once
//! posted, whether a person deleted it, and why comments are not posted. The state lives on
//! the environment row (`pr_comment_*`), read with the row.

use sqlx::PgPool;

use crate::StoreError;

/// Records the comment just posted or edited; clears any note.
pub async fn record_posted(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    comment_id: &str,
    version: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"UPDATE environments
           SET pr_comment_id = $3, pr_comment_version = $4, pr_comment_note = NULL,
               updated_at = now()
           WHERE integration_id = $1 AND name = $2"#,
        integration_id,
        name,
        comment_id,
        version,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The comment is gone from Bitbucket (someone deleted it): never posted again.
pub async fn record_deleted(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"UPDATE environments
           SET pr_comment_deleted = true,
               pr_comment_note = 'the comment was deleted on Bitbucket; it is not posted again',
               updated_at = now()
           WHERE integration_id = $1 AND name = $2"#,
        integration_id,
        name,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Why the comment was not posted or edited (shown by `environment:info`).
pub async fn record_note(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"UPDATE environments SET pr_comment_note = $3, updated_at = now()
           WHERE integration_id = $1 AND name = $2 AND pr_comment_note IS DISTINCT FROM $3"#,
        integration_id,
        name,
        note,
    )
    .execute(pool)
    .await?;
    Ok(())
}
