//! Deployment reports from the deploy side: every report is kept as history; the one about
//! an environment's head updates the environment and queues the build status, all in one
//! transaction that holds the integration's processing lock, so a batch being planned
//! cannot overwrite the status the report set.

use chrono::{DateTime, Utc};
use relay_core::deployment::{on_report, DeploymentReport, DeploymentState, ReportDecision};
use relay_core::plan::status_jobs;
use relay_core::{BuildState, EnvironmentStatus, JobSpec};
use sqlx::PgPool;

use crate::environments::EnvironmentRow;
use crate::{StoreError, Text};

/// One stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub id: i64,
    pub integration_id: String,
    pub environment: String,
    pub commit: String,
    pub state: DeploymentState,
    pub url: Option<String>,
    pub log_url: Option<String>,
    pub description: Option<String>,
    pub current_head: bool,
    pub reported_at: DateTime<Utc>,
}

/// What recording a report did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub deployment: DeploymentRow,
    pub decision: ReportDecision,
}

/// Records `report` for environment `name`. `Ok(None)` when the environment does not exist.
pub async fn record(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    report: &DeploymentReport,
) -> Result<Option<Recorded>, StoreError> {
    let mut tx = pool.begin().await?;
    // Waits for a batch of this integration in flight, which could overwrite the status.
    crate::queue::lock_integration(&mut tx, integration_id).await?;
    let Some(row) = crate::environments::get_in(&mut tx, integration_id, name).await? else {
        return Ok(None);
    };
    let decision = on_report(&row.to_environment()?, report);
    let deployment = insert(&mut tx, &row, report, decision.current_head).await?;
    update_environment(&mut tx, &row, report, &decision).await?;
    if let Some((state, description)) = &decision.build_status {
        let comments = crate::integrations::get_in(&mut tx, integration_id)
            .await?
            .settings
            .pull_request_comments;
        let jobs = status_jobs(build_status(&row, report, *state, description), comments);
        crate::jobs::insert_all(&mut tx, integration_id, None, &jobs).await?;
    }
    tx.commit().await?;
    Ok(Some(Recorded {
        deployment,
        decision,
    }))
}

fn build_status(
    row: &EnvironmentRow,
    report: &DeploymentReport,
    state: BuildState,
    description: &str,
) -> JobSpec {
    JobSpec::BuildStatus {
        environment: row.name.clone(),
        commit: report.commit.clone(),
        state,
        description: description.to_owned(),
        url: report.url.clone(),
    }
}

async fn insert(
    conn: &mut sqlx::PgConnection,
    row: &EnvironmentRow,
    report: &DeploymentReport,
    current_head: bool,
) -> Result<DeploymentRow, StoreError> {
    Ok(sqlx::query_as!(
        DeploymentRow,
        r#"INSERT INTO deployments (integration_id, environment, commit, state, url, log_url,
                                    description, current_head)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, integration_id, environment, commit,
                     state AS "state: Text<DeploymentState>", url, log_url, description,
                     current_head, reported_at"#,
        row.integration_id,
        row.name,
        report.commit.as_str(),
        report.state.as_str(),
        report.url,
        report.log_url,
        report.description,
        current_head,
    )
    .fetch_one(&mut *conn)
    .await?)
}

async fn update_environment(
    conn: &mut sqlx::PgConnection,
    row: &EnvironmentRow,
    report: &DeploymentReport,
    decision: &ReportDecision,
) -> Result<(), StoreError> {
    let (status, failure_reason) = match &decision.status {
        Some((status, reason)) => (Some(*status), reason.clone()),
        None => (None, row.failure_reason.clone()),
    };
    sqlx::query!(
        r#"UPDATE environments
           SET last_deployment_commit = $3, last_deployment_state = $4,
               last_deployment_url = $5, last_deployment_log_url = $6,
               last_deployment_description = $7, last_deployment_reported_at = now(),
               status = COALESCE($8, status), failure_reason = $9,
               last_activity_ms = CASE WHEN $10
                   THEN GREATEST(last_activity_ms, (extract(epoch FROM now()) * 1000)::bigint)
                   ELSE last_activity_ms END,
               updated_at = now()
           WHERE integration_id = $1 AND name = $2"#,
        row.integration_id,
        row.name,
        report.commit.as_str(),
        report.state.as_str(),
        report.url,
        report.log_url,
        report.description,
        status.map(EnvironmentStatus::as_str),
        failure_reason,
        // A deployment of the head is activity for environment_idle_ttl.
        decision.current_head,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The newest reports of one environment, newest first.
pub async fn list(
    pool: &PgPool,
    integration_id: &str,
    name: &str,
    limit: i64,
) -> Result<Vec<DeploymentRow>, StoreError> {
    Ok(sqlx::query_as!(
        DeploymentRow,
        r#"SELECT id, integration_id, environment, commit,
                  state AS "state: Text<DeploymentState>", url, log_url, description,
                  current_head, reported_at
           FROM deployments
           WHERE integration_id = $1 AND environment = $2
           ORDER BY id DESC
           LIMIT $3"#,
        integration_id,
        name,
        limit,
    )
    .fetch_all(pool)
    .await?)
}
