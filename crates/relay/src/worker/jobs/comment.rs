//! The one comment per pull-request environment on its pull request: posted once, its id
//! (and Server's version) stored on the environment row, then edited in place on every
//! change. A comment someone deleted is not posted again; missing permissions are a note
//! on the environment (`environment:info`), not a failing job.

use relay_bitbucket::{BitbucketClient, CommentPermission, PostedComment};
use relay_core::comment::{is_comment_for, render, CommentFacts};
use relay_core::{BuildState, CommitHash};
use relay_store::comments;
use relay_store::integrations::IntegrationRecord;
use relay_store::jobs::ClaimedJob;

use super::{Context, JobError};
use crate::bitbucket::AccessError;

/// What the comment is to say: the facts of the build status it goes with.
#[derive(Debug)]
pub(super) struct CommentUpdate {
    pub environment: String,
    pub commit: CommitHash,
    pub state: BuildState,
    pub description: String,
    pub url: Option<String>,
}

/// Shown when the Cloud consumer was not given "Pull requests: Write".
const MISSING_PERMISSION: &str = "pull-request comments skipped: the OAuth consumer lacks \
    the \"Pull requests: Write\" permission (scope pullrequest:write); grant it on Bitbucket \
    or turn off --pull-request-comments";

pub(super) async fn run(
    context: &Context,
    job: &ClaimedJob,
    update: CommentUpdate,
) -> Result<(), JobError> {
    let (pool, integration) = (&context.pool, job.integration_id.as_str());
    let record = relay_store::integrations::get(pool, integration).await?;
    let name = update.environment.as_str();
    if !record.settings.pull_request_comments {
        tracing::info!(
            environment = name,
            "pull_request_comments is off; not commented"
        );
        return Ok(());
    }
    let Some(env) = relay_store::environments::get(pool, integration, name).await? else {
        return Ok(());
    };
    let Some(pr_id) = env.pr_id.and_then(|id| u64::try_from(id).ok()) else {
        return Ok(());
    };
    if env.pr_comment_deleted {
        tracing::info!(
            environment = name,
            "the comment was deleted on Bitbucket; not posted again"
        );
        return Ok(());
    }
    let client = context.clients.get(&record, &context.key).await?;
    let permission = client
        .comment_permission()
        .await
        .map_err(AccessError::from)?;
    if let CommentPermission::Missing { .. } = permission {
        tracing::warn!(environment = name, "{MISSING_PERMISSION}");
        comments::record_note(pool, integration, name, MISSING_PERMISSION).await?;
        return Ok(());
    }
    let text = text(&record, &update);
    let existing = match env.pr_comment_id.clone() {
        Some(id) => Some(PostedComment {
            id,
            version: env.pr_comment_version,
        }),
        None => lost_post(context, job, &client, pr_id, name).await?,
    };
    let result = match &existing {
        Some(comment) => client.edit_comment(pr_id, comment, &text).await,
        None => client.post_comment(pr_id, &text).await,
    };
    record_outcome(context, job, name, existing.is_some(), result).await
}

/// The comment's text; the link is the deployment's URL, else the `environment_url` template.
fn text(record: &IntegrationRecord, update: &CommentUpdate) -> String {
    let name = update.environment.as_str();
    let url = relay_core::environment::environment_url(
        update.url.as_deref(),
        record.environment_url.as_deref(),
        name,
    );
    render(&CommentFacts {
        environment: name,
        state: update.state,
        description: &update.description,
        url: url.as_deref(),
        commit: &update.commit,
    })
}

/// Stores what Bitbucket answered: the comment's id and version, that a person deleted it
/// (404 on an edit), or why comments are refused (403). Other failures fail the job.
async fn record_outcome(
    context: &Context,
    job: &ClaimedJob,
    name: &str,
    edited: bool,
    result: relay_bitbucket::Result<PostedComment>,
) -> Result<(), JobError> {
    let (pool, integration) = (&context.pool, job.integration_id.as_str());
    match result {
        Ok(posted) => {
            comments::record_posted(pool, integration, name, &posted.id, posted.version).await?;
            let comment_id = posted.id.as_str();
            tracing::info!(
                environment = name,
                comment_id,
                edited,
                "pull-request comment written"
            );
            Ok(())
        }
        Err(relay_bitbucket::Error::NotFound { .. }) if edited => {
            tracing::info!(
                environment = name,
                "the comment was deleted on Bitbucket; not posted again"
            );
            comments::record_deleted(pool, integration, name).await?;
            Ok(())
        }
        // The pull request itself is gone: its close event follows.
        Err(relay_bitbucket::Error::NotFound { .. }) => Ok(()),
        Err(relay_bitbucket::Error::Forbidden { .. }) => {
            let note = "pull-request comments skipped: Bitbucket refused (403); the credentials \
                        may not comment on pull requests";
            tracing::warn!(environment = name, "{note}");
            comments::record_note(pool, integration, name, note).await?;
            Ok(())
        }
        Err(err) => Err(AccessError::from(err).into()),
    }
}

/// An earlier attempt may have posted the comment and died (or timed out) before storing
/// its id: before posting again, a retry looks for it on the pull request and adopts it.
async fn lost_post(
    context: &Context,
    job: &ClaimedJob,
    client: &BitbucketClient,
    pr_id: u64,
    name: &str,
) -> Result<Option<PostedComment>, JobError> {
    if job.attempt <= 1 {
        return Ok(None);
    }
    let found = client
        .find_comment(pr_id, &|text| is_comment_for(text, name))
        .await
        .map_err(AccessError::from)?;
    if let Some(comment) = &found {
        let comment_id = comment.id.as_str();
        tracing::info!(
            environment = name,
            comment_id,
            "adopted the comment an earlier attempt posted"
        );
        let (pool, integration) = (&context.pool, job.integration_id.as_str());
        comments::record_posted(pool, integration, name, &comment.id, comment.version).await?;
    }
    Ok(found)
}
