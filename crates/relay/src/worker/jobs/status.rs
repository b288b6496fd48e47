//! Build statuses on Bitbucket: the environment's state on the commit it was built from,
//! linked to the environment's URL.

use relay_bitbucket::{BuildState as Remote, BuildStatus};
use relay_core::plan::status_jobs;
use relay_core::{BuildState, CommitHash, JobSpec};
use relay_store::jobs::ClaimedJob;

use super::{Context, JobError};
use crate::bitbucket::AccessError;

/// One build status on Bitbucket, as a job queued by [`report`].
#[derive(Debug)]
pub(super) struct StatusReport {
    pub environment: String,
    pub commit: CommitHash,
    pub state: BuildState,
    pub description: String,
    /// The deployment's own URL, when the deploy side reported one.
    pub url: Option<String>,
}

pub(super) async fn run(
    context: &Context,
    job: &ClaimedJob,
    report: StatusReport,
) -> Result<(), JobError> {
    let StatusReport {
        environment,
        commit,
        state,
        description,
        url: reported_url,
    } = report;
    let record = relay_store::integrations::get(&context.pool, &job.integration_id).await?;
    let client = context.clients.get(&record, &context.key).await?;
    // Cloud pull-request payloads carry 12-character hashes; statuses need the full id.
    let commit = if commit.is_full() {
        commit
    } else {
        client
            .resolve_commit(commit.as_str())
            .await
            .map_err(AccessError::from)?
    };
    let url = relay_core::environment::environment_url(
        reported_url.as_deref(),
        record.environment_url.as_deref(),
        &environment,
    )
    .unwrap_or_else(|| context.config.public_url.clone());
    let status = BuildStatus {
        key: format!("relay-{environment}"),
        state: match state {
            BuildState::InProgress => Remote::InProgress,
            BuildState::Successful => Remote::Successful,
            BuildState::Failed => Remote::Failed,
            BuildState::Stopped => Remote::Stopped,
        },
        url,
        name: Some(format!("Environment {environment}")),
        description: Some(description),
    };
    client
        .set_build_status(&commit, &status)
        .await
        .map_err(AccessError::from)?;
    let commit = commit.as_str();
    tracing::info!(environment, commit, state = ?state, "build status reported");
    Ok(())
}

/// Queues a status for `environment` on `commit`, and for a pull-request environment the
/// same news for its comment (`pull_request_comments`).
pub(super) async fn report(
    context: &Context,
    job: &ClaimedJob,
    environment: &str,
    commit: CommitHash,
    state: BuildState,
    description: &str,
    comments: bool,
) -> Result<(), JobError> {
    let status = JobSpec::BuildStatus {
        environment: environment.to_owned(),
        commit,
        state,
        description: description.to_owned(),
        url: None,
    };
    let jobs = status_jobs(status, comments);
    let mut conn = context
        .pool
        .acquire()
        .await
        .map_err(relay_store::StoreError::from)?;
    relay_store::jobs::insert_all(&mut conn, &job.integration_id, job.delivery_id, &jobs).await?;
    Ok(())
}
