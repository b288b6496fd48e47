//! JSON shapes of deliveries, jobs and environments, shared by the CLI's `--format json` and
//! the admin API so both speak the same language.

use relay_store::deliveries::{Delivery, DeliverySummary};
use relay_store::deployments::DeploymentRow;

use super::environments::TransitionOutcome;
use relay_store::environments::EnvironmentRow;
use relay_store::jobs::JobRow;
use serde_json::{json, Value};

pub fn delivery_summary(d: &DeliverySummary) -> Value {
    json!({
        "id": d.id,
        "integration_id": d.integration_id,
        "request_id": d.request_id,
        "event_key": d.event_key,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "received_at": d.received_at.to_rfc3339(),
        "processed_at": d.processed_at.map(|t| t.to_rfc3339()),
    })
}

pub fn delivery_detail(d: &Delivery, jobs: &[JobRow]) -> Value {
    json!({
        "id": d.id,
        "integration_id": d.integration_id,
        "request_id": d.request_id,
        "event_key": d.event_key,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "received_at": d.received_at.to_rfc3339(),
        "processed_at": d.processed_at.map(|t| t.to_rfc3339()),
        "headers": d.headers,
        "body_bytes": d.body.len(),
        "decisions": d.decisions,
        "jobs": jobs.iter().map(|j| json!({
            "id": j.id,
            "kind": j.kind,
            "state": j.state,
            "payload": j.payload,
        })).collect::<Vec<_>>(),
    })
}

pub fn job(j: &JobRow) -> Value {
    json!({
        "id": j.id,
        "integration_id": j.integration_id,
        "delivery_id": j.delivery_id,
        "kind": j.kind,
        "queue": j.queue_key,
        "state": j.state,
        "attempts": j.attempts,
        "run_after": j.run_after.to_rfc3339(),
        "last_error": j.last_error,
        "payload": j.payload,
        "created_at": j.created_at.to_rfc3339(),
        "completed_at": j.completed_at.map(|t| t.to_rfc3339()),
    })
}

pub fn environment(e: &EnvironmentRow) -> Value {
    let last_deployment = e.last_deployment_commit.as_ref().map(|commit| {
        json!({
            "commit": commit,
            "state": e.last_deployment_state,
            "url": e.last_deployment_url,
            "log_url": e.last_deployment_log_url,
            "description": e.last_deployment_description,
            "reported_at": e.last_deployment_reported_at.map(|t| t.to_rfc3339()),
        })
    });
    json!({
        "integration_id": e.integration_id,
        "name": e.name,
        "kind": e.kind,
        "status": e.status,
        "parent": e.parent,
        "branch": e.branch,
        "head_commit": e.head_commit,
        "pr_id": e.pr_id,
        "pr_source_branch": e.pr_source_branch,
        "pr_target_branch": e.pr_target_branch,
        "pr_state": e.pr_state,
        "failure_reason": e.failure_reason,
        "waiting": e.waiting_text(),
        "waiting_reason": e.waiting_reason,
        "waiting_since": e.waiting_since_ms.and_then(rfc3339_of_ms),
        "last_activity_at": e.last_activity_ms.and_then(rfc3339_of_ms),
        "last_deployment": last_deployment,
        "pull_request_comment": pull_request_comment(e),
        "updated_at": e.updated_at.to_rfc3339(),
    })
}

/// The pull request's one comment about a pull-request environment: its id once posted,
/// whether a person deleted it, and why comments are not posted.
fn pull_request_comment(e: &EnvironmentRow) -> Value {
    if e.pr_id.is_none() {
        return Value::Null;
    }
    json!({
        "id": e.pr_comment_id,
        "deleted": e.pr_comment_deleted,
        "note": e.pr_comment_note,
    })
}

fn rfc3339_of_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

/// One environment with what only its integration knows: its URL.
pub fn environment_detail(e: &EnvironmentRow, url: Option<String>) -> Value {
    let mut value = environment(e);
    value["url"] = json!(url);
    value["created_at"] = json!(e.created_at.to_rfc3339());
    value
}

pub fn deployment(d: &DeploymentRow) -> Value {
    json!({
        "id": d.id,
        "integration_id": d.integration_id,
        "environment": d.environment,
        "commit": d.commit,
        "state": d.state,
        "url": d.url,
        "log_url": d.log_url,
        "description": d.description,
        "current_head": d.current_head,
        "reported_at": d.reported_at.to_rfc3339(),
    })
}

/// The answer to an activate or deactivate.
pub fn transition(outcome: TransitionOutcome) -> Value {
    match outcome {
        TransitionOutcome::Queued { delivery_id } => {
            json!({ "status": "queued", "delivery_id": delivery_id })
        }
        TransitionOutcome::Unchanged => json!({ "status": "unchanged" }),
    }
}
