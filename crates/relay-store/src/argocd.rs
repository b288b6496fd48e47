//! What the Argo CD side reads and queues: the plugin generator's environments, and the
//! coalesced refresh jobs that tell Argo CD they changed.

use relay_core::{EnvironmentKind, EnvironmentStatus, JobSpec};
use sqlx::{PgConnection, PgPool};

use crate::{StoreError, Text};

/// One environment with what the plugin generator needs of its integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorRow {
    pub integration_id: String,
    pub repository: String,
    /// As stored: may carry credentials, which never leave the relay.
    pub deploy_remote: Option<String>,
    /// The integration's `environment_url` template.
    pub environment_url: Option<String>,
    /// The URL the deploy side last reported for this environment.
    pub last_deployment_url: Option<String>,
    pub name: String,
    pub kind: EnvironmentKind,
    pub status: EnvironmentStatus,
    pub branch: Option<String>,
    pub head_commit: Option<String>,
    pub pr_id: Option<i64>,
    pub pr_source_branch: Option<String>,
    pub pr_target_branch: Option<String>,
}

/// Which environments the generator lists. Empty `kinds` means every kind; `statuses` is
/// never empty (the endpoint defaults it to `active`).
#[derive(Debug, Clone, Default)]
pub struct GeneratorFilter {
    pub integration: Option<String>,
    pub kinds: Vec<EnvironmentKind>,
    pub statuses: Vec<EnvironmentStatus>,
}

/// Environments matching `filter`, by integration then name (a stable order, so Argo CD sees
/// the same list twice when nothing changed). Served by `environments_by_status`.
pub async fn list_environments(
    pool: &PgPool,
    filter: &GeneratorFilter,
) -> Result<Vec<GeneratorRow>, StoreError> {
    Ok(sqlx::query_as!(
        GeneratorRow,
        r#"SELECT e.integration_id, i.repository, i.deploy_remote, i.environment_url,
                  e.last_deployment_url,
                  e.name, e.kind AS "kind: Text<EnvironmentKind>",
                  e.status AS "status: Text<EnvironmentStatus>", e.branch, e.head_commit, e.pr_id,
                  e.pr_source_branch, e.pr_target_branch
           FROM environments e
           JOIN integrations i ON i.id = e.integration_id
           WHERE e.status = ANY($1::text[])
             AND ($2::text IS NULL OR e.integration_id = $2)
             AND (cardinality($3::text[]) = 0 OR e.kind = ANY($3::text[]))
           ORDER BY e.integration_id, e.name"#,
        &filter
            .statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>() as &[&str],
        filter.integration.as_deref(),
        &filter.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>() as &[&str],
    )
    .fetch_all(pool)
    .await?)
}

pub async fn integration_exists(pool: &PgPool, id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM integrations WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(pool)
    .await?)
}

/// Queues `job` (a [`JobSpec::RefreshApplicationSets`]) unless the newest pending job of its
/// lane already is one: that job has not started, so it runs after this transaction commits
/// and covers this change too. Bursts of changes thus cost one refresh per batch at most.
///
/// The pending job is locked (`FOR UPDATE`) until the caller's transaction ends, so a runner
/// cannot start it between this check and the commit (it skips locked jobs and takes it at its
/// next wake-up); a job that a runner claims first no longer counts as pending, and a new one
/// is queued. Returns whether a job was queued.
pub async fn queue_refresh(
    conn: &mut PgConnection,
    integration_id: &str,
    job: &JobSpec,
) -> Result<bool, StoreError> {
    let queue_key = crate::jobs::queue_key(integration_id, job);
    let payload = serde_json::to_value(job)
        .map_err(|e| StoreError::Corrupt(format!("job cannot be encoded: {e}")))?;
    let queued = sqlx::query_scalar!(
        r#"WITH newest AS (
               SELECT kind FROM jobs
               WHERE queue_key = $2 AND state = 'pending'
               ORDER BY id DESC
               LIMIT 1
               FOR UPDATE),
           inserted AS (
               INSERT INTO jobs (integration_id, kind, queue_key, payload)
               SELECT $1, $3, $2, $4
               WHERE NOT EXISTS (SELECT 1 FROM newest WHERE kind = $3)
               RETURNING id)
           SELECT count(*) AS "queued!" FROM inserted"#,
        integration_id,
        queue_key,
        job.kind().as_str(),
        payload,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(queued > 0)
}
