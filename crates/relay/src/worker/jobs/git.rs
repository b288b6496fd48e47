//! Git jobs: mirror a branch, build a pull request, delete a ref; each followed by the
//! matching push to the deploy remote when one is configured.

use std::time::Instant;

use relay_core::JobSpec;
use relay_git::{GitError, Mirror, PrBuild, PrBuildOutcome, PushRef, RemoteAccess};
use relay_store::jobs::ClaimedJob;

use super::remotes::{bitbucket_remote, deploy_remote};
use super::{Context, JobError};

/// The most a job spends repacking its mirror once its own work is done (see
/// relay-git's maintenance).
const HOUSEKEEPING_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn run(context: &Context, job: &ClaimedJob, spec: JobSpec) -> Result<(), JobError> {
    let record = relay_store::integrations::get(&context.pool, &job.integration_id).await?;
    let deploy = deploy_remote(&record);
    let lock = context.mirror_lock(&job.integration_id).await;
    let _guard = lock.lock().await;
    let data_dir = context.config.data_dir.clone();
    let deadline = Instant::now() + context.config.timeout;
    let integration_id = job.integration_id.clone();
    let default_branch = record.settings.default_branch.clone();

    match spec {
        JobSpec::MirrorBranch { branch, commit } => {
            let remote = bitbucket_remote(context, &record, "").await?;
            let outcome = blocking(move || {
                let mirror = Mirror::open(&data_dir, &integration_id)?
                    .with_default_branch(default_branch.as_deref());
                let head =
                    match mirror.mirror_branch(&remote, &branch, Some(commit.as_str()), deadline) {
                        Ok(head) => head,
                        // Deleted again since the push: its delete event follows; nothing to mirror.
                        Err(GitError::NotFound(what)) => {
                            return Ok(format!("{what}: already gone"))
                        }
                        Err(err) => return Err(err),
                    };
                if let Some(deploy) = &deploy {
                    let reference = relay_git::branch_ref(&branch);
                    push(
                        &mirror,
                        deploy,
                        &[PushRef {
                            src: Some(reference.clone()),
                            dst: reference,
                        }],
                        deadline,
                    )?;
                }
                mirror.housekeep(HOUSEKEEPING_BUDGET);
                Ok(format!("{branch} at {head}"))
            })
            .await?;
            tracing::info!(result = %outcome, "branch mirrored");
            Ok(())
        }
        JobSpec::DeleteRef { name } => {
            blocking(move || {
                let mirror = Mirror::open(&data_dir, &integration_id)?
                    .with_default_branch(default_branch.as_deref());
                mirror.delete_ref(&name)?;
                if let (Some(deploy), Some(target)) = (&deploy, deployed_name(&name)) {
                    push(
                        &mirror,
                        deploy,
                        &[PushRef {
                            src: None,
                            dst: target,
                        }],
                        deadline,
                    )?;
                }
                Ok(())
            })
            .await?;
            tracing::info!("ref deleted");
            Ok(())
        }
        JobSpec::BuildPullRequest {
            environment,
            pr_id,
            source_branch,
            source_commit,
            source_repository,
            target_branch,
            post_merge,
        } => {
            let target = bitbucket_remote(context, &record, "").await?;
            let source = if source_repository.is_empty() || source_repository == record.repository {
                target.clone()
            } else {
                bitbucket_remote(context, &record, &source_repository).await?
            };
            let build = PrBuild {
                id: pr_id,
                source_branch,
                source_commit: source_commit.as_str().to_owned(),
                target_branch,
                post_merge,
            };
            let env_name = environment.clone();
            let outcome = blocking(move || {
                let mirror = Mirror::open(&data_dir, &integration_id)?
                    .with_default_branch(default_branch.as_deref());
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
                    let src = relay_git::pull_request_ref(build.id, build.post_merge);
                    push(
                        &mirror,
                        deploy,
                        &[PushRef {
                            src: Some(src),
                            dst: relay_git::branch_ref(&env_name),
                        }],
                        deadline,
                    )?;
                }
                mirror.housekeep(HOUSEKEEPING_BUDGET);
                Ok(Some(outcome))
            })
            .await?;
            let Some(outcome) = outcome else {
                return Ok(());
            };
            let pool = &context.pool;
            let integration = job.integration_id.as_str();
            match outcome {
                PrBuildOutcome::Built { head, merge } => {
                    relay_store::environments::record_build(pool, integration, &environment, None)
                        .await?;
                    tracing::info!(head = %head, merge = merge.as_deref().unwrap_or(""), environment = %environment, "pull request built");
                    // "Build, then deploy": the deploy side hears about the built commit.
                    if let Ok(source) = relay_core::CommitHash::parse(&head) {
                        super::status::report(
                            context,
                            job,
                            &environment,
                            source,
                            relay_core::BuildState::InProgress,
                            "built; deploying",
                        )
                        .await?;
                    }
                    let built = merge.unwrap_or(head);
                    let commit = relay_core::CommitHash::parse(&built)
                        .map_err(|e| JobError::permanent(format!("built commit {built}: {e}")))?;
                    let deploy = JobSpec::Deploy {
                        environment,
                        commit,
                    };
                    relay_store::jobs::enqueue(pool, integration, job.delivery_id, &deploy).await?;
                }
                PrBuildOutcome::Conflict { paths } => {
                    let reason = format!("merge conflict in {}", paths.join(", "));
                    relay_store::environments::record_build(
                        pool,
                        integration,
                        &environment,
                        Some(&reason),
                    )
                    .await?;
                    tracing::warn!(environment = %environment, reason = %reason, "pull request does not merge");
                    super::status::report(
                        context,
                        job,
                        &environment,
                        source_commit.clone(),
                        relay_core::BuildState::Failed,
                        &reason,
                    )
                    .await?;
                    let failed = JobSpec::NotifyDeploySide {
                        environment,
                        event: relay_core::DeployEvent::Failed,
                        parent: None,
                        clone_parent_data: false,
                    };
                    relay_store::jobs::enqueue(pool, integration, job.delivery_id, &failed).await?;
                }
            }
            Ok(())
        }
        other => Err(JobError::permanent(format!(
            "{} is not a git job",
            other.kind()
        ))),
    }
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
