//! The activity log as the CLI (`integration:activity:list`, `integration:activity:log`) and
//! the admin API (`/api/v1/integrations/{id}/activities[/{activity_id}]`) show it: each
//! delivery, reconciliation, job and circuit change of one integration, newest first, with a
//! one-line description, and its timestamped lines.

use std::time::Duration;

use chrono::{DateTime, Utc};
use relay_store::activities::{self, ActivityRow, Filter};
use relay_store::PgPool;
use serde::Serialize;
use serde_json::Value;

use super::AdminError;

pub const TYPES: [&str; 4] = ["delivery", "reconcile", "job", "circuit"];
pub const STATES: [&str; 3] = ["pending", "in_progress", "complete"];
pub const RESULTS: [&str; 2] = ["success", "failure"];
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActivityView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub result: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogLine {
    pub at: String,
    pub line: String,
}

/// The filters of a listing, as given (checked by [`list`]).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub state: Option<String>,
    pub result: Option<String>,
    pub limit: Option<i64>,
}

fn one_of(
    field: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, AdminError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(AdminError::Invalid(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

/// The integration's activities within `retention`, newest first.
pub async fn list(
    pool: &PgPool,
    integration_id: &str,
    retention: Duration,
    query: Query,
) -> Result<Vec<ActivityView>, AdminError> {
    let kind = one_of("type", query.kind, &TYPES)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AdminError::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let filter = Filter {
        state: one_of("state", query.state, &STATES)?,
        result: one_of("result", query.result, &RESULTS)?,
        since: Some(
            Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX),
        ),
        only: None,
        limit,
    };
    relay_store::integrations::get(pool, integration_id).await?;
    let wants = |t: &str| kind.as_deref().is_none_or(|k| k == t);
    let mut rows = Vec::new();
    if wants("delivery") {
        rows.extend(activities::deliveries(pool, integration_id, &filter).await?);
    }
    if wants("job") || wants("reconcile") {
        rows.extend(activities::jobs(pool, integration_id, kind.as_deref(), &filter).await?);
    }
    if wants("circuit") {
        rows.extend(activities::logged(pool, integration_id, &filter).await?);
    }
    rows.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows.iter().map(view).collect())
}

/// One activity and its timestamped lines, oldest first.
pub async fn log(
    pool: &PgPool,
    integration_id: &str,
    activity_id: &str,
) -> Result<(ActivityView, Vec<LogLine>), AdminError> {
    let not_found = || AdminError::NotFound(format!("activity {activity_id:?}"));
    let (source, n) = activity_id
        .rsplit_once('-')
        .and_then(|(source, n)| Some((source, n.parse::<i64>().ok()?)))
        .ok_or_else(not_found)?;
    let filter = Filter {
        only: Some(n),
        limit: 1,
        ..Filter::default()
    };
    let rows = match source {
        "delivery" => activities::deliveries(pool, integration_id, &filter).await?,
        "job" => activities::jobs(pool, integration_id, None, &filter).await?,
        "circuit" => activities::logged(pool, integration_id, &filter).await?,
        _ => Vec::new(),
    };
    let row = rows.into_iter().next().ok_or_else(not_found)?;
    let mut lines = match source {
        "delivery" => delivery_lines(pool, n).await?,
        "job" => job_lines(&row),
        _ => Vec::new(),
    };
    lines.extend(activities::lines(pool, integration_id, &row.id).await?);
    lines.sort_by_key(|(at, _)| *at);
    let lines = lines
        .into_iter()
        .map(|(at, line)| LogLine {
            at: at.to_rfc3339(),
            line,
        })
        .collect();
    Ok((view(&row), lines))
}

fn view(row: &ActivityRow) -> ActivityView {
    ActivityView {
        id: row.id.clone(),
        kind: row.kind.clone(),
        state: row.state.clone(),
        result: row.result.clone(),
        created_at: row.created_at.to_rfc3339(),
        completed_at: row.completed_at.map(|t| t.to_rfc3339()),
        description: one_line(&describe(row)),
    }
}

fn describe(row: &ActivityRow) -> String {
    let error = row
        .detail
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    match row.kind.as_str() {
        "delivery" => {
            let request = row
                .reference
                .as_deref()
                .map(|r| format!(" (request {r})"))
                .unwrap_or_default();
            match row.status.as_str() {
                "pending" if row.attempts > 0 => format!(
                    "{} delivery{request}: waiting to retry after attempt {}{error}",
                    row.subject, row.attempts
                ),
                "failed" => format!("{} delivery{request} failed{error}", row.subject),
                status => format!("{} delivery{request} {status}", row.subject),
            }
        }
        "circuit" => row.detail.clone().unwrap_or_default(),
        _ => {
            let lane = row.reference.clone().unwrap_or_default();
            let attempts = plural(row.attempts, "attempt");
            match row.status.as_str() {
                "succeeded" => format!("{} on {lane}: succeeded after {attempts}", row.subject),
                "dead" => format!("{} on {lane}: dead after {attempts}{error}", row.subject),
                "running" => format!(
                    "{} on {lane}: running (attempt {})",
                    row.subject, row.attempts
                ),
                _ if row.attempts > 0 => format!(
                    "{} on {lane}: waiting to retry after {attempts}{error}",
                    row.subject
                ),
                _ => format!("{} on {lane}: queued", row.subject),
            }
        }
    }
}

fn plural(n: i32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// At most 200 characters on one line.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= 200 {
        return flat;
    }
    let mut cut: String = flat.chars().take(199).collect();
    cut.push('…');
    cut
}

/// A delivery's lines from its own row: received, the last failed attempt, the decisions,
/// and the jobs it queued.
async fn delivery_lines(
    pool: &PgPool,
    id: i64,
) -> Result<Vec<(DateTime<Utc>, String)>, AdminError> {
    let delivery = relay_store::deliveries::get(pool, id).await?;
    let request = delivery
        .request_id
        .as_deref()
        .map(|r| format!(", request {r}"))
        .unwrap_or_default();
    let mut lines = vec![(
        delivery.received_at,
        format!(
            "received {} ({} bytes{request})",
            delivery.event_key,
            delivery.body.len()
        ),
    )];
    let done = delivery.processed_at.unwrap_or_else(Utc::now);
    if let Some(error) = &delivery.last_error {
        lines.push((
            done,
            one_line(&format!("attempt {} failed: {error}", delivery.attempts)),
        ));
    }
    if let Some(at) = delivery.processed_at {
        lines.push((at, delivery.status.to_string()));
        lines.extend(
            decision_lines(delivery.decisions.as_ref())
                .into_iter()
                .map(|l| (at, l)),
        );
    }
    let jobs = relay_store::jobs::list(pool, None, Some(id), None, 1000).await?;
    for job in jobs {
        lines.push((
            job.created_at,
            format!("queued job-{} ({})", job.id, job.kind),
        ));
    }
    Ok(lines)
}

/// The planner's decisions, one line each: notes, then environment changes.
fn decision_lines(decisions: Option<&Value>) -> Vec<String> {
    let Some(decisions) = decisions else {
        return Vec::new();
    };
    let list = |field: &str| decisions[field].as_array().cloned().unwrap_or_default();
    let mut lines: Vec<String> = list("notes")
        .iter()
        .map(|n| one_line(&format!("note: {}", n.as_str().unwrap_or_default())))
        .collect();
    lines.extend(
        list("changes")
            .iter()
            .map(|c| one_line(&format!("decision: {c}"))),
    );
    lines
}

/// A job's lines from its own row; its attempts were appended as they happened.
fn job_lines(row: &ActivityRow) -> Vec<(DateTime<Utc>, String)> {
    let mut lines = vec![(
        row.created_at,
        format!(
            "queued {} on {}",
            row.subject,
            row.reference.as_deref().unwrap_or_default()
        ),
    )];
    if let Some(at) = row.completed_at {
        lines.push((at, row.status.clone()));
    }
    lines
}
