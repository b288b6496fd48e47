//! `/console/jobs`: the job queue, filtered by state; "Retry" on dead jobs.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use relay_store::console::JobFilter;
use relay_store::jobs::JobRow;
use relay_store::{JobState, StoreError};
use serde::Deserialize;

use super::{
    before, enum_choices, id_from_path, integration_choices, one_of, BackForm, Choice, PAGE_SIZE,
};
use crate::console::csrf::CsrfForm;
use crate::console::error::ConsoleError;
use crate::console::render::{given, href, page, pretty_value, see_other, stamp, Layout, Stamp};
use crate::console::session::{Flash, Session};
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct JobsPage {
    layout: Layout,
    integrations: Vec<Choice>,
    states: Vec<Choice>,
    rows: Vec<JobLine>,
    older: Option<String>,
    /// Where "Retry" comes back to: this very list.
    back: String,
}

/// A job as the jobs page and a delivery's page show it.
pub(crate) struct JobLine {
    pub id: i64,
    pub integration_id: String,
    pub integration_href: String,
    pub delivery_id: Option<i64>,
    pub delivery_href: Option<String>,
    pub kind: &'static str,
    /// The payload's identifying fields in one line ("environment: main").
    pub summary: String,
    pub payload: String,
    pub state: &'static str,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created: Stamp,
    pub completed: Option<Stamp>,
    pub retry_action: String,
    pub retryable: bool,
}

impl From<&JobRow> for JobLine {
    fn from(job: &JobRow) -> Self {
        let summary = ["environment", "branch", "name", "event", "state", "reason"]
            .iter()
            .filter_map(|key| {
                let value = job.payload.get(*key)?;
                let text = value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string());
                Some(format!("{key}: {text}"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            id: job.id,
            integration_href: format!("/console/integrations/{}", job.integration_id),
            integration_id: job.integration_id.clone(),
            delivery_id: job.delivery_id,
            delivery_href: job
                .delivery_id
                .map(|id| format!("/console/deliveries/{id}")),
            kind: job.kind.as_str(),
            summary,
            payload: pretty_value(&job.payload),
            state: job.state.as_str(),
            attempts: job.attempts,
            last_error: job.last_error.clone(),
            created: Stamp::new(job.created_at),
            completed: stamp(job.completed_at),
            retry_action: format!("/console/jobs/{}/retry", job.id),
            retryable: job.state == JobState::Dead,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    integration: Option<String>,
    state: Option<String>,
    before: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let integration = given(&query.integration);
    let job_state = one_of::<JobState>("state", given(&query.state))?;
    let filter = JobFilter {
        integration_id: integration,
        state: job_state,
        before: before(given(&query.before))?,
    };
    let mut rows = relay_store::console::jobs(&state.pool, &filter, PAGE_SIZE + 1).await?;
    let older = (rows.len() as i64 > PAGE_SIZE).then(|| {
        rows.truncate(PAGE_SIZE as usize);
        let last = rows.last().map(|r| r.id.to_string());
        href(
            "/console/jobs",
            &[
                ("integration", integration),
                ("state", job_state.map(JobState::as_str)),
                ("before", last.as_deref()),
            ],
        )
    });
    page(&JobsPage {
        layout: Layout::new("Jobs", "jobs", &session),
        integrations: integration_choices(&state, integration).await?,
        states: enum_choices(job_state),
        rows: rows.iter().map(JobLine::from).collect(),
        older,
        back: uri
            .path_and_query()
            .map_or("/console/jobs", |p| p.as_str())
            .to_owned(),
    })
}

/// Puts a dead job back in its lane, as `relay job:retry` does.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    posted: CsrfForm<BackForm>,
) -> Result<Response, ConsoleError> {
    let id = id_from_path(&raw_id, "job")?;
    match relay_store::jobs::retry(&state.pool, id).await {
        Ok(()) => {
            tracing::info!(job.id = id, "console: job retried");
            let message = format!("Job #{id} is queued again.");
            posted.session.flash(&state, Flash::info(message)).await;
        }
        Err(StoreError::Conflict(_)) => {
            let message = format!("Job #{id} is running right now; retry it once it has ended.");
            posted.session.flash(&state, Flash::error(message)).await;
        }
        Err(err) => return Err(err.into()),
    }
    Ok(see_other(posted.form.target("/console/jobs")))
}
