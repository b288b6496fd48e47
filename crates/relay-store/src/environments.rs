//! Environment rows, converted to and from the planner's [`Environment`].

use chrono::{DateTime, Utc};
use relay_core::{
    CommitHash, Environment, EnvironmentKind, EnvironmentStatus, PrState, PullRequestInfo, Waiting,
    WaitingReason,
};
use sqlx::{PgConnection, PgPool};

use crate::{StoreError, Text};

#[derive(Debug, Clone)]
pub struct EnvironmentRow {
    pub id: i64,
    pub integration_id: String,
    pub name: String,
    pub kind: EnvironmentKind,
    pub parent: Option<String>,
    pub status: EnvironmentStatus,
    pub branch: Option<String>,
    pub head_commit: Option<String>,
    pub pr_id: Option<i64>,
    pub pr_source_branch: Option<String>,
    pub pr_source_repository: Option<String>,
    pub pr_target_branch: Option<String>,
    pub pr_target_commit: Option<String>,
    pub pr_state: Option<String>,
    pub pr_updated_at_ms: Option<i64>,
    pub failure_reason: Option<String>,
    /// The last deployment the deploy side reported (see [`crate::deployments`]).
    pub last_deployment_commit: Option<String>,
    pub last_deployment_state: Option<String>,
    pub last_deployment_url: Option<String>,
    pub last_deployment_log_url: Option<String>,
    pub last_deployment_description: Option<String>,
    pub last_deployment_reported_at: Option<DateTime<Utc>>,
    /// See [`Environment::last_activity_ms`].
    pub last_activity_ms: Option<i64>,
    /// A [`WaitingReason`]'s spelling, and since when (epoch ms).
    pub waiting_reason: Option<String>,
    pub waiting_since_ms: Option<i64>,
    /// The pull request's one comment about this environment (see `pr_comment_*` in the
    /// migration).
    pub pr_comment_id: Option<String>,
    pub pr_comment_version: Option<i64>,
    pub pr_comment_deleted: bool,
    pub pr_comment_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EnvironmentRow {
    /// The planner's view of the row. A row the planner cannot read (edited by hand into
    /// nonsense) is an error naming the row, not a panic.
    pub fn to_environment(&self) -> Result<Environment, StoreError> {
        let bad = |field: &str, value: &str| {
            StoreError::Corrupt(format!(
                "environment {:?} of integration {} has an invalid {field} {value:?}",
                self.name, self.integration_id
            ))
        };
        let commit =
            |field: &str, value: &Option<String>| -> Result<Option<CommitHash>, StoreError> {
                value
                    .as_deref()
                    .map(|v| CommitHash::parse(v).map_err(|_| bad(field, v)))
                    .transpose()
            };
        let pr = match self.pr_id {
            None => None,
            Some(id) => Some(PullRequestInfo {
                id: u64::try_from(id).map_err(|_| bad("pr_id", &id.to_string()))?,
                source_branch: self.pr_source_branch.clone().unwrap_or_default(),
                source_repository: self.pr_source_repository.clone().unwrap_or_default(),
                target_branch: self.pr_target_branch.clone().unwrap_or_default(),
                target_commit: commit("pr_target_commit", &self.pr_target_commit)?,
                state: self
                    .pr_state
                    .as_deref()
                    .unwrap_or("OPEN")
                    .parse::<PrState>()
                    .map_err(|_| bad("pr_state", self.pr_state.as_deref().unwrap_or_default()))?,
                updated_at_ms: self.pr_updated_at_ms,
            }),
        };
        let waiting = self
            .waiting_reason
            .as_deref()
            .map(|text| {
                text.parse::<WaitingReason>()
                    .map(|reason| Waiting {
                        reason,
                        since_ms: self.waiting_since_ms,
                    })
                    .map_err(|_| bad("waiting_reason", text))
            })
            .transpose()?;
        Ok(Environment {
            name: self.name.clone(),
            kind: self.kind,
            parent: self.parent.clone(),
            status: self.status,
            branch: self.branch.clone(),
            head_commit: commit("head_commit", &self.head_commit)?,
            pr,
            last_activity_ms: self.last_activity_ms,
            waiting,
        })
    }

    /// What the relay waits for before activating this environment, as shown to people.
    pub fn waiting_text(&self) -> Option<&'static str> {
        self.waiting_reason
            .as_deref()
            .and_then(|text| text.parse::<WaitingReason>().ok())
            .map(WaitingReason::describe)
    }
}

/// What `environment:list` and the API's `GET /environments` filter on.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvironmentFilter<'a> {
    pub integration_id: Option<&'a str>,
    pub status: Option<EnvironmentStatus>,
    pub kind: Option<EnvironmentKind>,
}

pub async fn list(
    pool: &PgPool,
    filter: EnvironmentFilter<'_>,
) -> Result<Vec<EnvironmentRow>, StoreError> {
    Ok(sqlx::query_as!(
        EnvironmentRow,
        r#"SELECT id, integration_id, name, kind AS "kind: Text<EnvironmentKind>", parent,
                  status AS "status: Text<EnvironmentStatus>", branch, head_commit, pr_id,
                  pr_source_branch, pr_source_repository, pr_target_branch, pr_target_commit,
                  pr_state, pr_updated_at_ms, failure_reason, last_deployment_commit,
                  last_deployment_state, last_deployment_url, last_deployment_log_url,
                  last_deployment_description, last_deployment_reported_at,
                  last_activity_ms, waiting_reason, waiting_since_ms, pr_comment_id,
                  pr_comment_version, pr_comment_deleted, pr_comment_note, created_at,
                  updated_at
           FROM environments
           WHERE ($1::text IS NULL OR integration_id = $1)
             AND ($2::text IS NULL OR status = $2)
             AND ($3::text IS NULL OR kind = $3)
           ORDER BY integration_id, name"#,
        filter.integration_id,
        filter.status.map(EnvironmentStatus::as_str),
        filter.kind.map(EnvironmentKind::as_str),
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
) -> Result<Option<EnvironmentRow>, StoreError> {
    let mut conn = pool.acquire().await?;
    get_in(&mut conn, integration_id, name).await
}

/// Same as [`get`], inside a caller's transaction.
pub async fn get_in(
    conn: &mut PgConnection,
    integration_id: &str,
    name: &str,
) -> Result<Option<EnvironmentRow>, StoreError> {
    Ok(sqlx::query_as!(
        EnvironmentRow,
        r#"SELECT id, integration_id, name, kind AS "kind: Text<EnvironmentKind>", parent,
                  status AS "status: Text<EnvironmentStatus>", branch, head_commit, pr_id,
                  pr_source_branch, pr_source_repository, pr_target_branch, pr_target_commit,
                  pr_state, pr_updated_at_ms, failure_reason, last_deployment_commit,
                  last_deployment_state, last_deployment_url, last_deployment_log_url,
                  last_deployment_description, last_deployment_reported_at,
                  last_activity_ms, waiting_reason, waiting_since_ms, pr_comment_id,
                  pr_comment_version, pr_comment_deleted, pr_comment_note, created_at,
                  updated_at
           FROM environments
           WHERE integration_id = $1 AND name = $2"#,
        integration_id,
        name
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// The planner's input for one integration, read inside the processing transaction, in
/// creation order (the order the cap's waiting queue falls back on).
pub async fn load_for_planning(
    conn: &mut PgConnection,
    integration_id: &str,
) -> Result<Vec<Environment>, StoreError> {
    let rows = sqlx::query_as!(
        EnvironmentRow,
        r#"SELECT id, integration_id, name, kind AS "kind: Text<EnvironmentKind>", parent,
                  status AS "status: Text<EnvironmentStatus>", branch, head_commit, pr_id,
                  pr_source_branch, pr_source_repository, pr_target_branch, pr_target_commit,
                  pr_state, pr_updated_at_ms, failure_reason, last_deployment_commit,
                  last_deployment_state, last_deployment_url, last_deployment_log_url,
                  last_deployment_description, last_deployment_reported_at,
                  last_activity_ms, waiting_reason, waiting_since_ms, pr_comment_id,
                  pr_comment_version, pr_comment_deleted, pr_comment_note, created_at,
                  updated_at
           FROM environments
           WHERE integration_id = $1 ORDER BY id"#,
        integration_id
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(EnvironmentRow::to_environment).collect()
}

/// Writes the rows that differ between `before` and `after` (the planner's applied state).
pub async fn write_changes(
    conn: &mut PgConnection,
    integration_id: &str,
    before: &[Environment],
    after: &[Environment],
) -> Result<usize, StoreError> {
    let before: std::collections::HashMap<&str, &Environment> =
        before.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut written = 0;
    for environment in after {
        if before.get(environment.name.as_str()) == Some(&environment) {
            continue;
        }
        upsert(conn, integration_id, environment).await?;
        written += 1;
    }
    Ok(written)
}

async fn upsert(
    conn: &mut PgConnection,
    integration_id: &str,
    env: &Environment,
) -> Result<(), StoreError> {
    let pr = env.pr.as_ref();
    let pr_id = pr.map(|p| i64::try_from(p.id)).transpose().map_err(|_| {
        StoreError::Rejected(format!("pull request id of {} is too large", env.name))
    })?;
    sqlx::query!(
        r#"INSERT INTO environments (
               integration_id, name, kind, parent, status, branch, head_commit, pr_id,
               pr_source_branch, pr_source_repository, pr_target_branch, pr_target_commit,
               pr_state, pr_updated_at_ms, last_activity_ms, waiting_reason, waiting_since_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
           ON CONFLICT (integration_id, name) DO UPDATE SET
               kind = EXCLUDED.kind, parent = EXCLUDED.parent, status = EXCLUDED.status,
               branch = EXCLUDED.branch, head_commit = EXCLUDED.head_commit,
               pr_id = EXCLUDED.pr_id, pr_source_branch = EXCLUDED.pr_source_branch,
               pr_source_repository = EXCLUDED.pr_source_repository,
               pr_target_branch = EXCLUDED.pr_target_branch,
               pr_target_commit = EXCLUDED.pr_target_commit, pr_state = EXCLUDED.pr_state,
               pr_updated_at_ms = EXCLUDED.pr_updated_at_ms,
               last_activity_ms = GREATEST(environments.last_activity_ms, EXCLUDED.last_activity_ms),
               waiting_reason = EXCLUDED.waiting_reason,
               waiting_since_ms = EXCLUDED.waiting_since_ms,
               failure_reason = CASE WHEN EXCLUDED.status = 'failed'
                                     THEN environments.failure_reason END,
               updated_at = now()"#,
        integration_id,
        env.name,
        env.kind.as_str(),
        env.parent,
        env.status.as_str(),
        env.branch,
        env.head_commit.as_ref().map(CommitHash::as_str),
        pr_id,
        pr.map(|p| p.source_branch.as_str()),
        pr.map(|p| p.source_repository.as_str()),
        pr.map(|p| p.target_branch.as_str()),
        pr.and_then(|p| p.target_commit.as_ref())
            .map(CommitHash::as_str),
        pr.map(|p| p.state.as_str()),
        pr.and_then(|p| p.updated_at_ms),
        env.last_activity_ms,
        env.waiting.map(|w| w.reason.as_str()),
        env.waiting.and_then(|w| w.since_ms),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Environments by status, for the metrics gauge.
pub async fn count_by_status(pool: &PgPool) -> Result<Vec<(EnvironmentStatus, i64)>, StoreError> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status: Text<EnvironmentStatus>", count(*) AS "count!"
           FROM environments GROUP BY status ORDER BY status"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status.0, r.count)).collect())
}

/// Records the outcome of a build on an environment: `failed` with its reason, or back to
/// `active` after a failure. Deleted environments are left alone (a late job result must not
/// revive them). Returns whether a row changed.
pub async fn record_build(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    failure: Option<&str>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query!(
        r#"UPDATE environments
           SET status = CASE WHEN $3::text IS NOT NULL THEN 'failed'
                             WHEN status = 'failed' THEN 'active'
                             ELSE status END,
               failure_reason = $3, updated_at = now()
           WHERE integration_id = $1 AND name = $2 AND status NOT IN ('deleting', 'deleted')"#,
        integration_id,
        name,
        failure,
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}
