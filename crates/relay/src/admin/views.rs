//! JSON shapes of deliveries, jobs and environments, shared by the CLI's `--format json` and
//! the admin API so both speak the same language.

use relay_store::deliveries::{Delivery, DeliverySummary};
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
        "updated_at": e.updated_at.to_rfc3339(),
    })
}
