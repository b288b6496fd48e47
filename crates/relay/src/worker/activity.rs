//! Writes to the activity log (what deliveries and jobs do not already record in their own
//! rows) and prunes it after `RELAY_ACTIVITY_RETENTION`. Writing is best effort: a line that
//! cannot be written is logged and the work goes on.

use relay_store::CircuitState;
use std::time::Duration;

use chrono::Utc;
use relay_store::jobs::ClaimedJob;
use relay_store::PgPool;
use tokio_util::sync::CancellationToken;

use super::circuit::{Target, Transition};

/// How often the log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One line in a job's log: the outcome of an attempt, or a wait for its circuit.
pub async fn job_line(pool: &PgPool, job: &ClaimedJob, line: &str) {
    let activity = format!("job-{}", job.id);
    if let Err(err) =
        relay_store::activities::append_line(pool, &job.integration_id, &activity, line).await
    {
        tracing::debug!(error = %err, "cannot write to the activity log");
    }
}

/// A circuit's change of state: an activity of type `circuit` with the details as lines.
pub async fn circuit_changed(pool: &PgPool, transition: &Transition) {
    let circuit = transition.target.as_str();
    let row = &transition.row;
    let (description, result) = match transition.to {
        CircuitState::Open if transition.from == CircuitState::HalfOpen => (
            format!("{circuit} circuit stays open: the probe failed"),
            Some("failure"),
        ),
        CircuitState::Open => (
            format!(
                "{circuit} circuit opened after {} consecutive failures",
                row.consecutive_failures
            ),
            Some("failure"),
        ),
        CircuitState::Closed => (
            format!("{circuit} circuit closed: a call succeeded; waiting jobs are released"),
            Some("success"),
        ),
        CircuitState::HalfOpen => (format!("{circuit} circuit is half_open"), None),
    };
    let mut lines = vec![format!("{} -> {}", transition.from, transition.to)];
    if let Some(error) = &row.last_error {
        lines.push(format!("last error: {error}"));
    }
    if let Some(at) = row
        .next_probe_at
        .filter(|_| transition.to == CircuitState::Open)
    {
        lines.push(format!("next probe at {}", at.to_rfc3339()));
    }
    record(
        pool,
        &transition.integration_id,
        &description,
        result,
        &lines,
    )
    .await;
}

/// An open circuit letting one call through.
pub async fn circuit_probing(pool: &PgPool, integration_id: &str, target: Target) {
    let description = format!(
        "{} circuit half open: one probe goes through",
        target.as_str()
    );
    let lines = vec!["open -> half_open".to_owned()];
    record(pool, integration_id, &description, None, &lines).await;
}

async fn record(
    pool: &PgPool,
    integration_id: &str,
    description: &str,
    result: Option<&str>,
    lines: &[String],
) {
    let written = relay_store::activities::record(
        pool,
        integration_id,
        "circuit",
        result,
        description,
        lines,
    )
    .await;
    if let Err(err) = written {
        tracing::debug!(error = %err, "cannot write to the activity log");
    }
}

/// Prunes the activity log (and previous secrets whose grace is over) now and then, until
/// `shutdown`. Every relay process does it; the deletes are idempotent.
pub async fn prune(pool: PgPool, retention: Duration, shutdown: CancellationToken) {
    loop {
        let before =
            Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        match relay_store::activities::prune(&pool, before).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "activity log pruned"),
            Err(err) => tracing::warn!(error = %err, "cannot prune the activity log"),
        }
        if let Err(err) = relay_store::previous_secrets::prune_expired(&pool).await {
            tracing::warn!(error = %err, "cannot forget expired previous secrets");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
