//! `/console/deliveries` and `/console/deliveries/{id}`: what arrived, what was decided and
//! what it caused; "Redeliver".

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use relay_store::console::DeliveryFilter;
use relay_store::deliveries::{Delivery, DeliverySummary};
use relay_store::DeliveryStatus;
use serde::Deserialize;

use super::jobs::JobLine;
use super::login::NoFields;
use super::{before, enum_choices, id_from_path, integration_choices, one_of, Choice, PAGE_SIZE};
use crate::console::csrf::CsrfForm;
use crate::console::error::ConsoleError;
use crate::console::render::{
    given, href, page, pretty, pretty_value, see_other, stamp, Layout, Stamp,
};
use crate::console::session::{Flash, Session};
use crate::http::AppState;

/// Bodies past this are cut on the page (the whole body stays stored).
const MAX_BODY_SHOWN: usize = 512 * 1024;

#[derive(Template)]
#[template(path = "console/deliveries.html")]
struct ListPage {
    layout: Layout,
    integrations: Vec<Choice>,
    statuses: Vec<Choice>,
    event_key: String,
    rows: Vec<Row>,
    older: Option<String>,
}

struct Row {
    id: i64,
    href: String,
    integration_id: String,
    integration_href: String,
    event_key: String,
    status: &'static str,
    attempts: i32,
    last_error: Option<String>,
    received: Stamp,
}

impl From<DeliverySummary> for Row {
    fn from(d: DeliverySummary) -> Self {
        Self {
            href: format!("/console/deliveries/{}", d.id),
            integration_href: format!("/console/integrations/{}", d.integration_id),
            id: d.id,
            integration_id: d.integration_id,
            event_key: d.event_key,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_error: d.last_error,
            received: Stamp::new(d.received_at),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    integration: Option<String>,
    status: Option<String>,
    event_key: Option<String>,
    before: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let filter = DeliveryFilter {
        integration_id: given(&query.integration),
        status: one_of::<DeliveryStatus>("status", given(&query.status))?,
        event_key: given(&query.event_key),
        before: before(given(&query.before))?,
    };
    let mut rows = relay_store::console::deliveries(&state.pool, &filter, PAGE_SIZE + 1).await?;
    let older = (rows.len() as i64 > PAGE_SIZE).then(|| {
        rows.truncate(PAGE_SIZE as usize);
        let last = rows.last().map(|r| r.id.to_string());
        href(
            "/console/deliveries",
            &[
                ("integration", filter.integration_id),
                ("status", filter.status.map(DeliveryStatus::as_str)),
                ("event_key", filter.event_key),
                ("before", last.as_deref()),
            ],
        )
    });
    page(&ListPage {
        layout: Layout::new("Deliveries", "deliveries", &session),
        integrations: integration_choices(&state, filter.integration_id).await?,
        statuses: enum_choices(filter.status),
        event_key: filter.event_key.unwrap_or_default().to_owned(),
        rows: rows.into_iter().map(Row::from).collect(),
        older,
    })
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DetailPage {
    layout: Layout,
    d: Detail,
    headers: Vec<(String, String)>,
    body: String,
    body_note: Option<String>,
    decisions: Option<String>,
    jobs: Vec<JobLine>,
    redeliver_action: String,
    /// Where a job's "Retry" comes back to.
    back: String,
}

struct Detail {
    id: i64,
    integration_id: String,
    integration_href: String,
    request_id: Option<String>,
    event_key: String,
    status: &'static str,
    attempts: i32,
    last_error: Option<String>,
    received: Stamp,
    processed: Option<Stamp>,
}

/// The stored headers, minus anything credential-like. Ingest keeps no signature, but a row
/// written by an older relay or by hand must not show one either.
fn shown_headers(headers: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = headers.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !["signature", "authorization", "cookie", "token", "secret"]
                .iter()
                .any(|bad| name.contains(bad))
        })
        .map(|(name, value)| {
            let text = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            (name.clone(), text)
        })
        .collect()
}

fn body_text(delivery: &Delivery) -> (String, Option<String>) {
    let bytes = &delivery.body;
    if bytes.len() <= MAX_BODY_SHOWN {
        return (pretty(bytes), None);
    }
    let cut = String::from_utf8_lossy(&bytes[..MAX_BODY_SHOWN]).into_owned();
    let note = format!(
        "The body is {} bytes; the first {MAX_BODY_SHOWN} are shown, as received.",
        bytes.len()
    );
    (cut, Some(note))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(raw_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id = id_from_path(&raw_id, "delivery")?;
    let delivery = relay_store::deliveries::get(&state.pool, id).await?;
    let jobs = relay_store::jobs::list(&state.pool, None, Some(id), None, 1000).await?;
    let (body, body_note) = body_text(&delivery);
    page(&DetailPage {
        layout: Layout::new(format!("Delivery #{id}"), "deliveries", &session),
        headers: shown_headers(&delivery.headers),
        body,
        body_note,
        decisions: delivery.decisions.as_ref().map(pretty_value),
        jobs: jobs.iter().map(JobLine::from).collect(),
        redeliver_action: format!("/console/deliveries/{id}/redeliver"),
        back: format!("/console/deliveries/{id}"),
        d: Detail {
            id,
            integration_href: format!("/console/integrations/{}", delivery.integration_id),
            integration_id: delivery.integration_id,
            request_id: delivery.request_id,
            event_key: delivery.event_key,
            status: delivery.status.as_str(),
            attempts: delivery.attempts,
            last_error: delivery.last_error,
            received: Stamp::new(delivery.received_at),
            processed: stamp(delivery.processed_at),
        },
    })
}

/// Puts the delivery back in the queue to be planned again, as `relay delivery:redeliver`.
pub(crate) async fn redeliver(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    posted: CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    let id = id_from_path(&raw_id, "delivery")?;
    relay_store::queue::redeliver(&state.pool, id).await?;
    tracing::info!(delivery.id = id, "console: delivery redelivered");
    let message = format!("Delivery #{id} is queued again and will be planned anew.");
    posted.session.flash(&state, Flash::info(message)).await;
    Ok(see_other(&format!("/console/deliveries/{id}")))
}
