//! Git jobs: mirror a branch, build a pull request, delete a ref; each followed by the
//! matching push to the deploy remote when one is configured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use relay_core::{BuildState, CommitHash, JobSpec};
use relay_git::{GitError, Mirror, PrBuild, PrBuildOutcome, PushRef, RemoteAccess};
use relay_store::integrations::IntegrationRecord;
use relay_store::jobs::ClaimedJob;

use super::remotes::{bitbucket_remote, deploy_remote};
use super::{status, Context, JobError};

/// The most a job spends repacking its mirror once its own work is done (see
/// relay-git's maintenance).
const HOUSEKEEPING_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// What every git job needs: the integration, where its mirror lives, the push target, the
/// deadline, and this process's lock on the mirror (held while the job runs).
struct Workspace {
    record: IntegrationRecord,
    deploy: Option<RemoteAccess>,
    data_dir: PathBuf,
    deadline: Instant,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Workspace {
    async fn open(context: &Context, job: &ClaimedJob) -> Result<Self, JobError> {
        let record = relay_store::integrations::get(&context.pool, &job.integration_id).await?;
        let deploy = deploy_remote(&record)?;
        let guard = context
            .mirror_lock(&job.integration_id)
            .await
            .lock_owned()
            .await;
        Ok(Self {
            record,
            deploy,
            data_dir: context.config.data_dir.clone(),
            deadline: Instant::now() + context.config.timeout,
            _guard: guard,
        })
    }

    /// Opens the mirror; called on the blocking thread.
    fn mirror(data_dir: &Path, id: &str, default_branch: Option<&str>) -> Result<Mirror, GitError> {
        Ok(Mirror::open(data_dir, id)?.with_default_branch(default_branch))
    }
}

/// `mirror_branch`: fetch the branch at `commit`, then push it to the deploy remote when
/// its environment deploys.
pub(super) async fn mirror_branch(
    context: &Context,
    job: &ClaimedJob,
    branch: String,
    commit: CommitHash,
    deploys: bool,
) -> Result<(), JobError> {
    let workspace = Workspace::open(context, job).await?;
    let remote = bitbucket_remote(context, &workspace.record, "").await?;
    let (data_dir, deadline, deploy) = (
        workspace.data_dir.clone(),
        workspace.deadline,
        workspace.deploy.clone().filter(|_| deploys),
    );
    let id = workspace.record.id.clone();
    let default_branch = workspace.record.settings.default_branch.clone();
    let outcome = blocking(move || {
        let mirror = Workspace::mirror(&data_dir, &id, default_branch.as_deref())?;
        let head = match mirror.mirror_branch(&remote, &branch, Some(commit.as_str()), deadline) {
            Ok(head) => head,
            // Deleted again since the push: its delete event follows; nothing to mirror.
            Err(GitError::NotFound(what)) => return Ok(format!("{what}: already gone")),
            Err(err) => return Err(err),
        };
        if let Some(deploy) = &deploy {
            let reference = relay_git::branch_ref(&branch);
            let refs = [PushRef {
                src: Some(reference.clone()),
                dst: reference,
            }];
            push(&mirror, deploy, &refs, deadline)?;
        }
        mirror.housekeep(HOUSEKEEPING_BUDGET);
        Ok(format!("{branch} at {head}"))
    })
    .await?;
    tracing::info!(result = %outcome, "branch mirrored");
    Ok(())
}

/// `delete_ref`: drop a mirrored ref, and its copy on the deploy remote.
pub(super) async fn delete_ref(
    context: &Context,
    job: &ClaimedJob,
    name: String,
) -> Result<(), JobError> {
    let workspace = Workspace::open(context, job).await?;
    let (data_dir, deadline, deploy) = (
        workspace.data_dir.clone(),
        workspace.deadline,
        workspace.deploy.clone(),
    );
    let id = workspace.record.id.clone();
    let default_branch = workspace.record.settings.default_branch.clone();
    blocking(move || {
        let mirror = Workspace::mirror(&data_dir, &id, default_branch.as_deref())?;
        mirror.delete_ref(&name)?;
        if let (Some(deploy), Some(target)) = (&deploy, deployed_name(&name)) {
            let refs = [PushRef {
                src: None,
                dst: target,
            }];
            push(&mirror, deploy, &refs, deadline)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!("ref deleted");
    Ok(())
}

/// `undeploy`: the environment was deactivated; its ref leaves the deploy remote, the mirror
/// keeps it.
pub(super) async fn undeploy(
    context: &Context,
    job: &ClaimedJob,
    reference: String,
) -> Result<(), JobError> {
    let workspace = Workspace::open(context, job).await?;
    let Some(deploy) = workspace.deploy.clone() else {
        tracing::info!("no deploy_remote; nothing to remove");
        return Ok(());
    };
    let (data_dir, deadline) = (workspace.data_dir.clone(), workspace.deadline);
    let id = workspace.record.id.clone();
    let default_branch = workspace.record.settings.default_branch.clone();
    let removed = reference.clone();
    blocking(move || {
        let mirror = Workspace::mirror(&data_dir, &id, default_branch.as_deref())?;
        let refs = [PushRef {
            src: None,
            dst: reference,
        }];
        push(&mirror, &deploy, &refs, deadline)
    })
    .await?;
    tracing::info!(reference = removed, "removed from the deploy remote");
    Ok(())
}

/// `build_pull_request`: fetch the source (from the fork when it lives in one), build the
/// head or the merge, push it as the environment's branch, then queue the deploy (or report
/// the conflict).
pub(super) async fn build_pull_request(
    context: &Context,
    job: &ClaimedJob,
    environment: String,
    build: PrBuild,
    (source_commit, source_repository): (CommitHash, String),
) -> Result<(), JobError> {
    let workspace = Workspace::open(context, job).await?;
    let record = &workspace.record;
    let target = bitbucket_remote(context, record, "").await?;
    let source = if source_repository.is_empty() || source_repository == record.repository {
        target.clone()
    } else {
        bitbucket_remote(context, record, &source_repository).await?
    };
    let (data_dir, deadline, deploy) = (
        workspace.data_dir.clone(),
        workspace.deadline,
        workspace.deploy.clone(),
    );
    let id = record.id.clone();
    let default_branch = record.settings.default_branch.clone();
    let env_name = environment.clone();
    let outcome = blocking(move || {
        let mirror = Workspace::mirror(&data_dir, &id, default_branch.as_deref())?;
        let outcome = match mirror.build_pull_request(&source, &target, &build, deadline) {
            // The source branch is gone: the pull request was closed or its branch
            // deleted, and that event follows. Nothing to build.
            Err(GitError::NotFound(what)) => {
                tracing::info!(missing = %what, "pull request source is gone; not built");
                return Ok(None);
            }
            other => other?,
        };
        if let (PrBuildOutcome::Built { .. }, Some(deploy)) = (&outcome, &deploy) {
            let refs = [PushRef {
                src: Some(relay_git::pull_request_ref(build.id, build.post_merge)),
                dst: relay_git::branch_ref(&env_name),
            }];
            push(&mirror, deploy, &refs, deadline)?;
        }
        mirror.housekeep(HOUSEKEEPING_BUDGET);
        Ok(Some(outcome))
    })
    .await?;
    match outcome {
        None => Ok(()),
        Some(PrBuildOutcome::Built { head, merge }) => {
            let comments = workspace.record.settings.pull_request_comments;
            built(context, job, &environment, (head, merge), comments).await
        }
        Some(PrBuildOutcome::Conflict { paths }) => {
            let comments = workspace.record.settings.pull_request_comments;
            conflicted(context, job, environment, source_commit, &paths, comments).await
        }
    }
}

/// "Build, then deploy": the build is recorded, Bitbucket hears it is deploying and the
/// deploy side gets the built commit.
async fn built(
    context: &Context,
    job: &ClaimedJob,
    environment: &str,
    (head, merge): (String, Option<String>),
    comments: bool,
) -> Result<(), JobError> {
    let (pool, integration) = (&context.pool, job.integration_id.as_str());
    relay_store::environments::record_build(pool, integration, environment, None).await?;
    let merge_commit = merge.as_deref().unwrap_or("");
    tracing::info!(head = %head, merge = merge_commit, environment, "pull request built");
    if let Ok(source) = CommitHash::parse(&head) {
        let state = BuildState::InProgress;
        let description = "built; deploying";
        status::report(
            context,
            job,
            environment,
            source,
            state,
            description,
            comments,
        )
        .await?;
    }
    let built = merge.unwrap_or(head);
    let commit = CommitHash::parse(&built)
        .map_err(|e| JobError::permanent(format!("built commit {built}: {e}")))?;
    let deploy = JobSpec::Deploy {
        environment: environment.to_owned(),
        commit,
    };
    relay_store::jobs::enqueue(pool, integration, job.delivery_id, &deploy).await?;
    Ok(())
}

/// A post-merge build that does not merge: the environment is marked failed with the
/// conflicting paths, Bitbucket shows FAILED and the deploy side hears `failed`.
async fn conflicted(
    context: &Context,
    job: &ClaimedJob,
    environment: String,
    source_commit: CommitHash,
    paths: &[String],
    comments: bool,
) -> Result<(), JobError> {
    let (pool, integration) = (&context.pool, job.integration_id.as_str());
    let reason = format!("merge conflict in {}", paths.join(", "));
    relay_store::environments::record_build(pool, integration, &environment, Some(&reason)).await?;
    tracing::warn!(environment = %environment, reason = %reason, "pull request does not merge");
    let state = BuildState::Failed;
    status::report(
        context,
        job,
        &environment,
        source_commit,
        state,
        &reason,
        comments,
    )
    .await?;
    let failed = JobSpec::NotifyDeploySide {
        environment,
        event: relay_core::DeployEvent::Failed,
        parent: None,
        clone_parent_data: false,
    };
    relay_store::jobs::enqueue(pool, integration, job.delivery_id, &failed).await?;
    Ok(())
}

/// The ref a mirror ref is pushed as on the deploy remote: branches keep their name, pull
/// request refs become `refs/heads/pr-<id>` (the environment's name).
fn deployed_name(mirror_ref: &str) -> Option<String> {
    if mirror_ref.starts_with("refs/heads/") {
        return Some(mirror_ref.to_owned());
    }
    let id = mirror_ref
        .strip_prefix("refs/pull-requests/")?
        .strip_suffix("/from")?;
    Some(format!("refs/heads/pr-{id}"))
}

/// Pushes, tolerating deletes of refs the deploy remote never had.
fn push(
    mirror: &Mirror,
    remote: &RemoteAccess,
    refs: &[PushRef],
    deadline: Instant,
) -> Result<(), GitError> {
    match mirror.push(remote, refs, deadline) {
        Err(GitError::PushRejected { message, .. })
            if refs.iter().all(|r| r.src.is_none()) && message.contains("not") =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Runs git off the async runtime, keeping the tracing span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
) -> Result<T, JobError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| JobError::transient(format!("git task failed: {e}")))?
        .map_err(|err| {
            if err.is_transient() {
                JobError::transient(err.to_string())
            } else {
                JobError::permanent(err.to_string())
            }
        })
}
