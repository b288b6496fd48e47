//! `/console`: every integration at a glance.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use relay_core::IntegrationType;
use relay_store::console::DeliveryMark;
use relay_store::{DeliveryStatus, JobState};

use crate::console::error::ConsoleError;
use crate::console::render::{href, page, Layout, Stamp};
use crate::console::session::Session;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    layout: Layout,
    rows: Vec<Row>,
}

struct Row {
    id: String,
    href: String,
    repository: String,
    kind: &'static str,
    last: Option<Mark>,
    failed: i64,
    failed_href: String,
    dead: i64,
    dead_href: String,
    oldest: Option<Mark>,
}

struct Mark {
    href: String,
    id: i64,
    event_key: String,
    status: &'static str,
    received: Stamp,
}

impl From<DeliveryMark> for Mark {
    fn from(mark: DeliveryMark) -> Self {
        Self {
            href: format!("/console/deliveries/{}", mark.id),
            id: mark.id,
            event_key: mark.event_key,
            status: mark.status.as_str(),
            received: Stamp::new(mark.received_at),
        }
    }
}

/// How the integration type reads for people.
pub(crate) fn kind_label(kind: IntegrationType) -> &'static str {
    match kind {
        IntegrationType::Cloud => "Bitbucket Cloud",
        IntegrationType::Server => "Bitbucket Server / Data Center",
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, ConsoleError> {
    let rows = relay_store::console::overview(&state.pool)
        .await?
        .into_iter()
        .map(|o| Row {
            href: format!("/console/integrations/{}", o.id),
            failed_href: href(
                "/console/deliveries",
                &[
                    ("integration", Some(&o.id)),
                    ("status", Some(DeliveryStatus::Failed.as_str())),
                ],
            ),
            dead_href: href(
                "/console/jobs",
                &[
                    ("integration", Some(&o.id)),
                    ("state", Some(JobState::Dead.as_str())),
                ],
            ),
            repository: o.repository,
            kind: kind_label(o.kind),
            last: o.last_delivery.map(Mark::from),
            failed: o.failed_last_hour,
            dead: o.dead_jobs_last_hour,
            oldest: o.oldest_pending.map(Mark::from),
            id: o.id,
        })
        .collect();
    page(&OverviewPage {
        layout: Layout::new("Overview", "overview", &session),
        rows,
    })
}
