//! Integration rows. Secrets arrive here already encrypted; this module never sees them in clear.

use chrono::{DateTime, Utc};
use relay_core::deployment::DeployFeedback;
use relay_core::{IntegrationType, Settings};
use sqlx::PgPool;

use crate::{StoreError, Text};

/// One integration, as the rest of the relay sees it: the row mapped once, here, with the
/// planner's rules as [`Settings`] (named as in `docs/ARCHITECTURE.md`, the hosted
/// platform's CLI names) and the product as [`IntegrationType`]. `*_ciphertext` fields hold
/// AES-GCM output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRecord {
    pub id: String,
    pub kind: IntegrationType,
    pub repository: String,
    pub oauth_key: Option<String>,
    pub oauth_secret_ciphertext: Option<Vec<u8>>,
    pub base_url: Option<String>,
    pub username: Option<String>,
    pub token_ciphertext: Option<Vec<u8>>,
    pub webhook_secret_ciphertext: Vec<u8>,
    pub deploy_hook_secret_ciphertext: Vec<u8>,
    /// Authenticates the deploy side's reports for this integration only.
    pub deploy_report_token_ciphertext: Option<Vec<u8>>,
    pub settings: Settings,
    pub deploy_remote: Option<String>,
    pub deploy_hook_url: Option<String>,
    pub environment_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The row exactly as stored; only [`IntegrationRecord`] leaves this module.
#[derive(Debug, Clone)]
struct IntegrationRow {
    id: String,
    r#type: IntegrationType,
    repository: String,
    oauth_key: Option<String>,
    oauth_secret_ciphertext: Option<Vec<u8>>,
    base_url: Option<String>,
    username: Option<String>,
    token_ciphertext: Option<Vec<u8>>,
    webhook_secret_ciphertext: Vec<u8>,
    deploy_hook_secret_ciphertext: Vec<u8>,
    deploy_report_token_ciphertext: Option<Vec<u8>>,
    fetch_branches: bool,
    prune_branches: bool,
    build_pull_requests: bool,
    build_pull_requests_post_merge: bool,
    resync_pull_requests: bool,
    pull_requests_clone_parent_data: bool,
    build_fork_pull_requests: bool,
    deploy_remote: Option<String>,
    deploy_hook_url: Option<String>,
    environment_url: Option<String>,
    default_branch: Option<String>,
    deploy_feedback: DeployFeedback,
    pull_request_comments: bool,
    build_draft_pull_requests: bool,
    branch_include: Option<String>,
    branch_exclude: Option<String>,
    pull_request_target_include: Option<String>,
    environment_idle_ttl: Option<i64>,
    max_active_environments: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<IntegrationRow> for IntegrationRecord {
    type Error = StoreError;

    fn try_from(row: IntegrationRow) -> Result<Self, StoreError> {
        let kind = row.r#type;
        let corrupt = |field: &str, value: String| {
            StoreError::Corrupt(format!(
                "integration {} has an invalid {field} {value}",
                row.id
            ))
        };
        let environment_idle_ttl = row
            .environment_idle_ttl
            .map(|secs| {
                u64::try_from(secs).map_err(|_| corrupt("environment_idle_ttl", secs.to_string()))
            })
            .transpose()?;
        let max_active_environments = row
            .max_active_environments
            .map(|max| {
                u32::try_from(max).map_err(|_| corrupt("max_active_environments", max.to_string()))
            })
            .transpose()?;
        Ok(Self {
            id: row.id,
            kind,
            repository: row.repository,
            oauth_key: row.oauth_key,
            oauth_secret_ciphertext: row.oauth_secret_ciphertext,
            base_url: row.base_url,
            username: row.username,
            token_ciphertext: row.token_ciphertext,
            webhook_secret_ciphertext: row.webhook_secret_ciphertext,
            deploy_hook_secret_ciphertext: row.deploy_hook_secret_ciphertext,
            deploy_report_token_ciphertext: row.deploy_report_token_ciphertext,
            settings: Settings {
                fetch_branches: row.fetch_branches,
                prune_branches: row.prune_branches,
                build_pull_requests: row.build_pull_requests,
                build_pull_requests_post_merge: row.build_pull_requests_post_merge,
                resync_pull_requests: row.resync_pull_requests,
                pull_requests_clone_parent_data: row.pull_requests_clone_parent_data,
                build_fork_pull_requests: row.build_fork_pull_requests,
                default_branch: row.default_branch,
                deploy_feedback: row.deploy_feedback,
                pull_request_comments: row.pull_request_comments,
                build_draft_pull_requests: row.build_draft_pull_requests,
                branch_include: row.branch_include,
                branch_exclude: row.branch_exclude,
                pull_request_target_include: row.pull_request_target_include,
                environment_idle_ttl,
                max_active_environments,
            },
            deploy_remote: row.deploy_remote,
            deploy_hook_url: row.deploy_hook_url,
            environment_url: row.environment_url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The idle TTL and the cap as their columns' types.
fn policy_columns(settings: &Settings) -> Result<(Option<i64>, Option<i32>), StoreError> {
    let too_large = |field: &str| StoreError::Corrupt(format!("{field} is too large to store"));
    let ttl = settings
        .environment_idle_ttl
        .map(|secs| i64::try_from(secs).map_err(|_| too_large("environment_idle_ttl")))
        .transpose()?;
    let max = settings
        .max_active_environments
        .map(|max| i32::try_from(max).map_err(|_| too_large("max_active_environments")))
        .transpose()?;
    Ok((ttl, max))
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
    let (ttl, max_active) = policy_columns(&record.settings)?;
    sqlx::query_as!(
        IntegrationRow,
        r#"INSERT INTO integrations (
               id, type, repository, oauth_key, oauth_secret_ciphertext, base_url, username,
               token_ciphertext, webhook_secret_ciphertext, deploy_hook_secret_ciphertext,
               fetch_branches, prune_branches,
               build_pull_requests, build_pull_requests_post_merge, resync_pull_requests,
               pull_requests_clone_parent_data, build_fork_pull_requests, deploy_remote,
               deploy_hook_url, environment_url, default_branch, deploy_feedback,
               deploy_report_token_ciphertext, pull_request_comments,
               build_draft_pull_requests, branch_include, branch_exclude,
               pull_request_target_include, environment_idle_ttl, max_active_environments)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $21, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18, $19, $20, $22, $23, $24, $25, $26, $27, $28, $29, $30)
           RETURNING id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                     oauth_secret_ciphertext, base_url, username, token_ciphertext,
                     webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                     prune_branches, build_pull_requests, build_pull_requests_post_merge,
                     resync_pull_requests, pull_requests_clone_parent_data,
                     build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                     default_branch, deploy_report_token_ciphertext,
                     deploy_feedback AS "deploy_feedback: Text<DeployFeedback>",
                  pull_request_comments, build_draft_pull_requests, branch_include,
                  branch_exclude, pull_request_target_include, environment_idle_ttl,
                  max_active_environments, created_at,
                     updated_at"#,
        record.id,
        record.kind.as_str(),
        record.repository,
        record.oauth_key,
        record.oauth_secret_ciphertext,
        record.base_url,
        record.username,
        record.token_ciphertext,
        record.webhook_secret_ciphertext,
        record.settings.fetch_branches,
        record.settings.prune_branches,
        record.settings.build_pull_requests,
        record.settings.build_pull_requests_post_merge,
        record.settings.resync_pull_requests,
        record.settings.pull_requests_clone_parent_data,
        record.settings.build_fork_pull_requests,
        record.deploy_remote,
        record.deploy_hook_url,
        record.environment_url,
        record.settings.default_branch,
        record.deploy_hook_secret_ciphertext,
        record.settings.deploy_feedback.as_str(),
        record.deploy_report_token_ciphertext,
        record.settings.pull_request_comments,
        record.settings.build_draft_pull_requests,
        record.settings.branch_include,
        record.settings.branch_exclude,
        record.settings.pull_request_target_include,
        ttl,
        max_active,
    )
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::unique_as_conflict(e, "integration"))?
    .try_into()
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
        IntegrationRow,
        r#"SELECT id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                  oauth_secret_ciphertext, base_url, username, token_ciphertext,
                  webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                  prune_branches, build_pull_requests, build_pull_requests_post_merge,
                  resync_pull_requests, pull_requests_clone_parent_data,
                  build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                  default_branch, deploy_report_token_ciphertext,
                  deploy_feedback AS "deploy_feedback: Text<DeployFeedback>",
                  pull_request_comments, build_draft_pull_requests, branch_include,
                  branch_exclude, pull_request_target_include, environment_idle_ttl,
                  max_active_environments, created_at,
                  updated_at
           FROM integrations WHERE id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("integration"))?
    .try_into()
}

pub async fn list(pool: &PgPool) -> Result<Vec<IntegrationRecord>, StoreError> {
    sqlx::query_as!(
        IntegrationRow,
        r#"SELECT id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                  oauth_secret_ciphertext, base_url, username, token_ciphertext,
                  webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                  prune_branches, build_pull_requests, build_pull_requests_post_merge,
                  resync_pull_requests, pull_requests_clone_parent_data,
                  build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                  default_branch, deploy_report_token_ciphertext,
                  deploy_feedback AS "deploy_feedback: Text<DeployFeedback>",
                  pull_request_comments, build_draft_pull_requests, branch_include,
                  branch_exclude, pull_request_target_include, environment_idle_ttl,
                  max_active_environments, created_at,
                  updated_at
           FROM integrations ORDER BY created_at, id"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(IntegrationRecord::try_from)
    .collect()
}

/// The row, locked until the caller's transaction ends.
async fn get_for_update(
    conn: &mut sqlx::PgConnection,
    id: &str,
) -> Result<IntegrationRecord, StoreError> {
    sqlx::query_as!(
        IntegrationRow,
        r#"SELECT id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                  oauth_secret_ciphertext, base_url, username, token_ciphertext,
                  webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                  prune_branches, build_pull_requests, build_pull_requests_post_merge,
                  resync_pull_requests, pull_requests_clone_parent_data,
                  build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                  default_branch, deploy_report_token_ciphertext,
                  deploy_feedback AS "deploy_feedback: Text<DeployFeedback>",
                  pull_request_comments, build_draft_pull_requests, branch_include,
                  branch_exclude, pull_request_target_include, environment_idle_ttl,
                  max_active_environments, created_at,
                  updated_at
           FROM integrations WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound("integration"))?
    .try_into()
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
    let mut record = get_for_update(&mut tx, id).await?;
    change(&mut record)?;
    let (ttl, max_active) = policy_columns(&record.settings)?;
    let updated: IntegrationRecord = sqlx::query_as!(
        IntegrationRow,
        r#"UPDATE integrations SET
               repository = $2, oauth_key = $3, oauth_secret_ciphertext = $4, base_url = $5,
               username = $6, token_ciphertext = $7, webhook_secret_ciphertext = $8,
               fetch_branches = $9, prune_branches = $10, build_pull_requests = $11,
               build_pull_requests_post_merge = $12, resync_pull_requests = $13,
               pull_requests_clone_parent_data = $14, build_fork_pull_requests = $15,
               deploy_remote = $16, deploy_hook_url = $17, environment_url = $18,
               default_branch = $19, deploy_hook_secret_ciphertext = $20,
               deploy_feedback = $21, deploy_report_token_ciphertext = $22,
               pull_request_comments = $23, build_draft_pull_requests = $24,
               branch_include = $25, branch_exclude = $26, pull_request_target_include = $27,
               environment_idle_ttl = $28, max_active_environments = $29, updated_at = now()
           WHERE id = $1
           RETURNING id, type AS "type: Text<IntegrationType>", repository, oauth_key,
                     oauth_secret_ciphertext, base_url, username, token_ciphertext,
                     webhook_secret_ciphertext, deploy_hook_secret_ciphertext, fetch_branches,
                     prune_branches, build_pull_requests, build_pull_requests_post_merge,
                     resync_pull_requests, pull_requests_clone_parent_data,
                     build_fork_pull_requests, deploy_remote, deploy_hook_url, environment_url,
                     default_branch, deploy_report_token_ciphertext,
                     deploy_feedback AS "deploy_feedback: Text<DeployFeedback>",
                  pull_request_comments, build_draft_pull_requests, branch_include,
                  branch_exclude, pull_request_target_include, environment_idle_ttl,
                  max_active_environments, created_at,
                     updated_at"#,
        record.id,
        record.repository,
        record.oauth_key,
        record.oauth_secret_ciphertext,
        record.base_url,
        record.username,
        record.token_ciphertext,
        record.webhook_secret_ciphertext,
        record.settings.fetch_branches,
        record.settings.prune_branches,
        record.settings.build_pull_requests,
        record.settings.build_pull_requests_post_merge,
        record.settings.resync_pull_requests,
        record.settings.pull_requests_clone_parent_data,
        record.settings.build_fork_pull_requests,
        record.deploy_remote,
        record.deploy_hook_url,
        record.environment_url,
        record.settings.default_branch,
        record.deploy_hook_secret_ciphertext,
        record.settings.deploy_feedback.as_str(),
        record.deploy_report_token_ciphertext,
        record.settings.pull_request_comments,
        record.settings.build_draft_pull_requests,
        record.settings.branch_include,
        record.settings.branch_exclude,
        record.settings.pull_request_target_include,
        ttl,
        max_active,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::from)?
    .try_into()?;
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
