//! Integration rows. Secrets arrive here already encrypted; this module never sees them in clear.

use chrono::{DateTime, Utc};
use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::{StoreError, Text};

/// One integration row. Fields named as in DESIGN.md; `*_ciphertext` hold AES-GCM output.
///
/// The column list of the queries below is spelled out (no `*`) because `type` needs its
/// override to be read as an [`IntegrationType`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRecord {
    pub id: String,
    pub r#type: IntegrationType,
    pub repository: String,
    pub oauth_key: Option<String>,
    pub oauth_secret_ciphertext: Option<Vec<u8>>,
    pub base_url: Option<String>,
    pub username: Option<String>,
    pub token_ciphertext: Option<Vec<u8>>,
    pub webhook_secret_ciphertext: Vec<u8>,
    pub deploy_hook_secret_ciphertext: Vec<u8>,
    pub fetch_branches: bool,
    pub prune_branches: bool,
    pub build_pull_requests: bool,
    pub build_pull_requests_post_merge: bool,
    pub resync_pull_requests: bool,
    pub pull_requests_clone_parent_data: bool,
    pub build_fork_pull_requests: bool,
    pub deploy_remote: Option<String>,
    pub deploy_hook_url: Option<String>,
    pub environment_url: Option<String>,
    pub default_branch: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the webhook endpoint needs to verify a delivery.
#[derive(Debug, Clone)]
pub struct WebhookCredentials {
    pub r#type: IntegrationType,
    pub webhook_secret_ciphertext: Vec<u8>,
}

pub async fn insert(
    pool: &PgPool,
    record: &IntegrationRecord,
) -> Result<IntegrationRecord, StoreError> {
    sqlx::query_as!(
        IntegrationRecord,
        r#"INSERT INTO integrations (
               id, type, repository, oauth_key, oauth_secret_ciphertext, base_url, username,
               token_ciphertext, webhook_secret_ciphertext, deploy_hook_secret_ciphertext,
               fetch_branches, prune_branches,
               build_pull_requests, build_pull_requests_post_merge, resync_pull_requests,
               pull_requests_clone_parent_data, build_fork_pull_requests, deploy_remote,
               deploy_hook_url, environment_url, default_branch)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $21, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
           RETURNING id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                     oauth_secret_ciphertext, base_url, username, token_ciphertext,
                     webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                     prune_branches, build_pull_requests, build_pull_requests_post_merge,
                     resync_pull_requests, pull_requests_clone_parent_data,
                     build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                     default_branch, created_at, updated_at"#,
        record.id,
        record.r#type.as_str(),
        record.repository,
        record.oauth_key,
        record.oauth_secret_ciphertext,
        record.base_url,
        record.username,
        record.token_ciphertext,
        record.webhook_secret_ciphertext,
        record.fetch_branches,
        record.prune_branches,
        record.build_pull_requests,
        record.build_pull_requests_post_merge,
        record.resync_pull_requests,
        record.pull_requests_clone_parent_data,
        record.build_fork_pull_requests,
        record.deploy_remote,
        record.deploy_hook_url,
        record.environment_url,
        record.default_branch,
        record.deploy_hook_secret_ciphertext,
    )
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::unique_as_conflict(e, "integration"))
}

pub async fn get(pool: &PgPool, id: &str) -> Result<IntegrationRecord, StoreError> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, id).await
}

/// Same as [`get`], inside a caller's transaction.
pub async fn get_in(
    conn: &mut sqlx::PgConnection,
    id: &str,
) -> Result<IntegrationRecord, StoreError> {
    sqlx::query_as!(
        IntegrationRecord,
        r#"SELECT id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                  oauth_secret_ciphertext, base_url, username, token_ciphertext,
                  webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                  prune_branches, build_pull_requests, build_pull_requests_post_merge,
                  resync_pull_requests, pull_requests_clone_parent_data,
                  build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                  default_branch, created_at, updated_at
           FROM integrations WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("integration"))
}

pub async fn list(pool: &PgPool) -> Result<Vec<IntegrationRecord>, StoreError> {
    Ok(sqlx::query_as!(
        IntegrationRecord,
        r#"SELECT id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                  oauth_secret_ciphertext, base_url, username, token_ciphertext,
                  webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                  prune_branches, build_pull_requests, build_pull_requests_post_merge,
                  resync_pull_requests, pull_requests_clone_parent_data,
                  build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                  default_branch, created_at, updated_at
           FROM integrations ORDER BY created_at, id"#
    )
    .fetch_all(pool)
    .await?)
}

/// Read-modify-write under a row lock, so two concurrent updates cannot lose each other's
/// changes. `change` validates and edits the record; its error aborts the transaction.
pub async fn update<E>(
    pool: &PgPool,
    id: &str,
    change: impl FnOnce(&mut IntegrationRecord) -> Result<(), E>,
) -> Result<IntegrationRecord, E>
where
    E: From<StoreError>,
{
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let mut record = sqlx::query_as!(
        IntegrationRecord,
        r#"SELECT id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                  oauth_secret_ciphertext, base_url, username, token_ciphertext,
                  webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                  prune_branches, build_pull_requests, build_pull_requests_post_merge,
                  resync_pull_requests, pull_requests_clone_parent_data,
                  build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                  default_branch, created_at, updated_at
           FROM integrations WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::from)?
    .ok_or(StoreError::NotFound("integration"))?;
    change(&mut record)?;
    let updated = sqlx::query_as!(
        IntegrationRecord,
        r#"UPDATE integrations SET
               repository = $2, oauth_key = $3, oauth_secret_ciphertext = $4, base_url = $5,
               username = $6, token_ciphertext = $7, webhook_secret_ciphertext = $8,
               fetch_branches = $9, prune_branches = $10, build_pull_requests = $11,
               build_pull_requests_post_merge = $12, resync_pull_requests = $13,
               pull_requests_clone_parent_data = $14, build_fork_pull_requests = $15,
               deploy_remote = $16, deploy_hook_url = $17, environment_url = $18,
               default_branch = $19, deploy_hook_secret_ciphertext = $20, updated_at = now()
           WHERE id = $1
           RETURNING id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                     oauth_secret_ciphertext, base_url, username, token_ciphertext,
                     webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                     prune_branches, build_pull_requests, build_pull_requests_post_merge,
                     resync_pull_requests, pull_requests_clone_parent_data,
                     build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                     default_branch, created_at, updated_at"#,
        record.id,
        record.repository,
        record.oauth_key,
        record.oauth_secret_ciphertext,
        record.base_url,
        record.username,
        record.token_ciphertext,
        record.webhook_secret_ciphertext,
        record.fetch_branches,
        record.prune_branches,
        record.build_pull_requests,
        record.build_pull_requests_post_merge,
        record.resync_pull_requests,
        record.pull_requests_clone_parent_data,
        record.build_fork_pull_requests,
        record.deploy_remote,
        record.deploy_hook_url,
        record.environment_url,
        record.default_branch,
        record.deploy_hook_secret_ciphertext,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(updated)
}

pub async fn delete(pool: &PgPool, id: &str) -> Result<(), StoreError> {
    let result = sqlx::query!("DELETE FROM integrations WHERE id = $1", id)
        .execute(pool)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound("integration"));
    }
    Ok(())
}

pub async fn webhook_credentials(
    pool: &PgPool,
    id: &str,
) -> Result<Option<WebhookCredentials>, StoreError> {
    Ok(sqlx::query_as!(
        WebhookCredentials,
        r#"SELECT type AS "type: Text<IntegrationType>", webhook_secret_ciphertext
           FROM integrations WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?)
}

/// Records the default branch learnt from Bitbucket, unless an admin set one meanwhile.
pub async fn learn_default_branch(pool: &PgPool, id: &str, branch: &str) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE integrations SET default_branch = $2, updated_at = now()
         WHERE id = $1 AND default_branch IS NULL",
        id,
        branch
    )
    .execute(pool)
    .await?;
    Ok(())
}
