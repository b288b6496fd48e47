//! Reconciliation: list the repository's branches and open pull requests through the API and
//! queue the listing as a snapshot delivery, so it is planned in the integration's delivery
//! order like any webhook (and later webhooks are planned after it). A listing that fails
//! part-way queues nothing, so pruning only ever acts on a complete answer from Bitbucket.

use relay_core::Event;
use relay_store::deliveries::NewDelivery;
use relay_store::jobs::ClaimedJob;

use super::{Context, JobError};
use crate::bitbucket::AccessError;

use relay_core::event::SNAPSHOT_EVENT;

pub async fn run(context: &Context, job: &ClaimedJob) -> Result<(), JobError> {
    let record = relay_store::integrations::get(&context.pool, &job.integration_id).await?;
    let client = context.clients.get(&record, &context.key).await?;
    let repository = client.repository().await.map_err(AccessError::from)?;
    if record.settings.default_branch.is_none() {
        if let Some(branch) = &repository.default_branch {
            // The production branch comes from Bitbucket unless an admin chose one.
            relay_store::integrations::learn_default_branch(&context.pool, &record.id, branch)
                .await?;
        }
    }
    let branches = client.list_branches().await.map_err(AccessError::from)?;
    let pull_requests = client
        .list_open_pull_requests()
        .await
        .map_err(AccessError::from)?;
    let snapshot = Event::Snapshot {
        branches: branches.into_iter().map(|b| (b.name, b.commit)).collect(),
        pull_requests,
    };
    let body = serde_json::to_vec(&snapshot)
        .map_err(|e| JobError::permanent(format!("snapshot cannot be encoded: {e}")))?;
    let (branch_count, pr_count) = match &snapshot {
        Event::Snapshot {
            branches,
            pull_requests,
        } => (branches.len(), pull_requests.len()),
        _ => (0, 0),
    };
    relay_store::deliveries::insert(
        &context.pool,
        &NewDelivery {
            integration_id: record.id.clone(),
            request_id: None,
            event_key: SNAPSHOT_EVENT.to_owned(),
            headers: serde_json::json!({ "x-relay-source": "reconciler" }),
            body: body.into(),
        },
    )
    .await
    .map_err(|e| JobError::transient(e.to_string()))?;
    tracing::info!(
        branches = branch_count,
        pull_requests = pr_count,
        "snapshot queued"
    );
    Ok(())
}
