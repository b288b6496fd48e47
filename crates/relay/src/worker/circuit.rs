//! Circuit breakers: one per integration for its deploy hook and one for its Bitbucket API.
//!
//! * **Closed**: calls go. Each transient failure of a guarded job (network, timeout, 5xx,
//!   429, a deploy hook's non-2xx; not the relay's own database) counts; a success resets.
//!   After `RELAY_CIRCUIT_FAILURES` in a row (default 5) the circuit opens.
//! * **Open**: no calls. A guarded job claimed meanwhile is put back in its lane until the
//!   next probe, **without using an attempt**: waiting for a dependency is not failing.
//! * **Half open**: once the probe time comes (`RELAY_CIRCUIT_PROBE_SECS`, default 30, doubling
//!   after each failed probe up to 10 minutes), exactly one job (across all replicas: the
//!   state is a row in PostgreSQL) makes the call. Success closes the circuit and makes every
//!   waiting job of the integration due at once; they then run in their lanes' order. Failure
//!   opens it again with the longer wait.
//!
//! Guarded kinds: `deploy`, `sync_from_parent`, `notify_deploy_side` (the deploy hook) and
//! `build_status`, `reconcile` (Bitbucket's REST API). Git transfers are not guarded: they
//! have their own retries and a mirror to protect.

use relay_core::JobKind;
use relay_store::CircuitState;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relay_store::circuits::{self, CircuitRow};
use relay_store::jobs::ClaimedJob;
use relay_store::{PgPool, StoreError};

use super::jobs::JobError;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    DeployHook,
    Bitbucket,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployHook => "deploy_hook",
            Self::Bitbucket => "bitbucket",
        }
    }

    /// The circuit a job kind's call goes through, if any.
    pub fn of_kind(kind: JobKind) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.kinds().contains(&kind))
    }

    pub const ALL: [Self; 2] = [Self::DeployHook, Self::Bitbucket];

    fn kinds(self) -> &'static [JobKind] {
        match self {
            Self::DeployHook => &[
                JobKind::Deploy,
                JobKind::SyncFromParent,
                JobKind::NotifyDeploySide,
            ],
            Self::Bitbucket => &[JobKind::BuildStatus, JobKind::Reconcile],
        }
    }
}

#[derive(Debug, Clone)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// First wait before a probe; doubled after each failed probe.
    pub probe: Duration,
    pub max_probe: Duration,
    /// How long a probe in flight keeps the others waiting before it counts as lost (its
    /// relay died).
    pub probe_hold: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            probe: Duration::from_secs(30),
            max_probe: Duration::from_secs(600),
            probe_hold: Duration::from_secs(60),
        }
    }
}

/// What a claimed job may do about its circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not guarded, or the guard cannot be read (the job's own store access will fail too).
    Free,
    /// Guarded: go. `probe` when this call decides whether the circuit closes; `tracked`
    /// when the circuit has a row whose failures a success must reset.
    Go {
        target: Target,
        probe: bool,
        tracked: bool,
    },
    /// The circuit is open: the job was put back in its lane without using an attempt.
    Waited,
}

/// Decides for `job` and, when its circuit is open, puts it back until the next probe.
pub async fn admit(pool: &PgPool, config: &CircuitConfig, job: &ClaimedJob) -> Gate {
    let Some(target) = Target::of_kind(job.kind) else {
        return Gate::Free;
    };
    match decide(pool, config, &job.integration_id, target).await {
        Ok(Decision::Go { probe, tracked }) => Gate::Go {
            target,
            probe,
            tracked,
        },
        Ok(Decision::Wait(until)) => match circuits::defer_job(pool, job, until).await {
            Ok(_) => {
                tracing::info!(circuit = target.as_str(), until = %until, "circuit open; job waits without using an attempt");
                let line = format!(
                    "waiting for the open {} circuit until {} (no attempt used)",
                    target.as_str(),
                    until.to_rfc3339()
                );
                super::activity::job_line(pool, job, &line).await;
                Gate::Waited
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot put the job back to wait for its circuit");
                Gate::Free
            }
        },
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the circuit; the job goes ahead");
            Gate::Free
        }
    }
}

enum Decision {
    Go { probe: bool, tracked: bool },
    Wait(DateTime<Utc>),
}

async fn decide(
    pool: &PgPool,
    config: &CircuitConfig,
    integration_id: &str,
    target: Target,
) -> Result<Decision, StoreError> {
    let Some(row) = circuits::get(pool, integration_id, target.as_str()).await? else {
        return Ok(Decision::Go {
            probe: false,
            tracked: false,
        });
    };
    if row.state == CircuitState::Closed {
        return Ok(Decision::Go {
            probe: false,
            tracked: row.consecutive_failures > 0,
        });
    }
    let now = Utc::now();
    let hold = now + chrono_duration(config.probe_hold);
    if row.next_probe_at.is_none_or(|at| at <= now)
        && circuits::take_probe(pool, integration_id, target.as_str(), hold).await?
    {
        super::activity::circuit_probing(pool, integration_id, target).await;
        return Ok(Decision::Go {
            probe: true,
            tracked: true,
        });
    }
    let until = row.next_probe_at.filter(|at| *at > now).unwrap_or(hold);
    Ok(Decision::Wait(until))
}

/// A change of state, for logs, metrics and the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub integration_id: String,
    pub target: Target,
    pub from: CircuitState,
    pub to: CircuitState,
    pub row: CircuitRow,
}

/// Records the guarded call's outcome. Returns the transition it caused, if any.
pub async fn settle(
    pool: &PgPool,
    config: &CircuitConfig,
    metrics: &Metrics,
    job: &ClaimedJob,
    gate: Gate,
    result: &Result<(), JobError>,
) -> Option<Transition> {
    let Gate::Go {
        target,
        probe,
        tracked,
    } = gate
    else {
        return None;
    };
    let counted = match result {
        Ok(()) if !tracked => return None,
        Ok(()) => None,
        Err(err) if err.transient && !err.local => Some(err.message.as_str()),
        // A failure that says nothing about the other side; a probe that hit one has not
        // decided anything, so the next probe may go at once.
        Err(_) if probe => Some("the probe failed for a reason of the relay's own"),
        Err(_) => return None,
    };
    let now = Utc::now();
    let changed =
        circuits::change(
            pool,
            &job.integration_id,
            target.as_str(),
            |before| match counted {
                None => closed(&job.integration_id, target),
                Some(error) => {
                    next_on_failure(&job.integration_id, target, before, now, config, error)
                }
            },
        )
        .await;
    let (before, after) = match changed {
        Ok(pair) => pair,
        Err(err) => {
            tracing::warn!(error = %err, "cannot record the circuit's outcome");
            return None;
        }
    };
    let from = before.map_or(CircuitState::Closed, |b| b.state);
    if from == after.state {
        return None;
    }
    let transition = Transition {
        integration_id: job.integration_id.clone(),
        target,
        from,
        to: after.state,
        row: after,
    };
    announce(pool, metrics, &transition).await;
    Some(transition)
}

async fn announce(pool: &PgPool, metrics: &Metrics, transition: &Transition) {
    let circuit = transition.target.as_str();
    metrics.record_circuit_transition(circuit, transition.to.as_str());
    match transition.to {
        CircuitState::Open => tracing::warn!(
            circuit,
            integration.id = %transition.integration_id,
            failures = transition.row.consecutive_failures,
            next_probe_at = ?transition.row.next_probe_at,
            "circuit opened; calls stop until a probe succeeds"
        ),
        CircuitState::Closed => {
            tracing::info!(circuit, integration.id = %transition.integration_id, "circuit closed");
            let kinds = transition.target.kinds();
            if let Err(err) = circuits::release_jobs(pool, &transition.integration_id, kinds).await
            {
                tracing::warn!(error = %err, "cannot release the jobs that waited for the circuit");
            }
        }
        CircuitState::HalfOpen => {}
    }
    super::activity::circuit_changed(pool, transition).await;
}

fn closed(integration_id: &str, target: Target) -> CircuitRow {
    CircuitRow {
        integration_id: integration_id.to_owned(),
        target: target.as_str().to_owned(),
        state: CircuitState::Closed,
        consecutive_failures: 0,
        probe_interval_ms: None,
        next_probe_at: None,
        opened_at: None,
        last_error: None,
        updated_at: Utc::now(),
    }
}

/// The circuit after one more counted failure.
pub fn next_on_failure(
    integration_id: &str,
    target: Target,
    before: Option<&CircuitRow>,
    now: DateTime<Utc>,
    config: &CircuitConfig,
    error: &str,
) -> CircuitRow {
    let mut next = before
        .cloned()
        .unwrap_or_else(|| closed(integration_id, target));
    next.consecutive_failures = next.consecutive_failures.saturating_add(1);
    next.last_error = Some(error.chars().take(500).collect());
    let base = millis(config.probe);
    match next.state {
        // The probe failed: wait longer before the next one.
        CircuitState::HalfOpen => {
            let interval = next
                .probe_interval_ms
                .unwrap_or(base)
                .saturating_mul(2)
                .min(millis(config.max_probe));
            next.state = CircuitState::Open;
            next.probe_interval_ms = Some(interval);
            next.next_probe_at = Some(now + chrono::Duration::milliseconds(interval));
        }
        // A call admitted before the circuit opened, failing late: nothing new.
        CircuitState::Open => {}
        CircuitState::Closed
            if next.consecutive_failures >= i32::try_from(config.failures).unwrap_or(i32::MAX) =>
        {
            next.state = CircuitState::Open;
            next.probe_interval_ms = Some(base);
            next.next_probe_at = Some(now + chrono::Duration::milliseconds(base));
            next.opened_at = Some(now);
        }
        CircuitState::Closed => {}
    }
    next
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(millis(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_backs_off_after_failed_probes() {
        let config = CircuitConfig {
            failures: 3,
            probe: Duration::from_secs(30),
            max_probe: Duration::from_secs(100),
            ..CircuitConfig::default()
        };
        let now = Utc::now();
        let fail = |row: Option<&CircuitRow>| {
            next_on_failure("i", Target::DeployHook, row, now, &config, "503")
        };
        let one = fail(None);
        assert_eq!(
            (one.state, one.consecutive_failures),
            (CircuitState::Closed, 1)
        );
        let two = fail(Some(&one));
        let three = fail(Some(&two));
        assert_eq!(three.state, CircuitState::Open);
        assert_eq!(three.probe_interval_ms, Some(30_000));
        assert_eq!(
            three.next_probe_at,
            Some(now + chrono::Duration::seconds(30))
        );
        let mut probing = three.clone();
        probing.state = CircuitState::HalfOpen;
        let reopened = fail(Some(&probing));
        assert_eq!(
            (reopened.state, reopened.probe_interval_ms),
            (CircuitState::Open, Some(60_000))
        );
        probing = reopened;
        probing.state = CircuitState::HalfOpen;
        assert_eq!(fail(Some(&probing)).probe_interval_ms, Some(100_000));
        assert_eq!(Target::of_kind(JobKind::Deploy), Some(Target::DeployHook));
        assert_eq!(Target::of_kind(JobKind::Reconcile), Some(Target::Bitbucket));
        assert_eq!(Target::of_kind(JobKind::MirrorBranch), None);
    }
}
