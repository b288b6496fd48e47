//! Plans one claim (one integration's next deliveries) and writes the result.
//!
//! The batch is planned in order, each delivery against the state the previous ones produced,
//! a chunk at a time: while PostgreSQL writes one chunk (in a savepoint of the claim's
//! transaction), the next is planned on a blocking thread against the state the first leaves,
//! so that the relay's parsing and planning and the database's writing overlap instead of
//! taking turns. When the database refuses a value of a chunk (`StoreError::Rejected`: a data
//! exception that the parser's checks did not catch), retrying the same write cannot help and
//! charging it to the oldest delivery would fail an innocent one; so that chunk is written
//! again delivery by delivery, each in its own savepoint: the refused one is marked `failed`
//! at once with the reason, the others are processed in order, and the chunk planned
//! meanwhile is planned again against what was really written.

use std::sync::Arc;

use relay_core::{Environment, Event, JobSpec, Plan, PlanContext, Settings};
use relay_store::queue::{self, Claim, Finished, Outcome, QueuedDelivery};
use relay_store::StoreError;
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// Deliveries planned and written together. A batch of a backlog (up to the processor's
/// batch size, 1,000 by default) is written in several, so that planning the next overlaps
/// writing this one; a chunk costs a savepoint and a statement per table, so not too small.
pub(super) const CHUNK: usize = 250;

/// One delivery's outcome and the jobs it decided.
struct Planned {
    finished: Finished,
    jobs: Vec<JobSpec>,
}

/// A chunk's deliveries planned against `before`, leaving `after`.
struct PlannedChunk {
    deliveries: Vec<QueuedDelivery>,
    before: Vec<Environment>,
    after: Vec<Environment>,
    jobs: Vec<(Option<i64>, JobSpec)>,
    finished: Vec<Finished>,
}

/// What writing a chunk left: its outcomes and, when a refused delivery made it differ from
/// the plan, the state really written.
struct Written {
    finished: Vec<Finished>,
    replanned: Option<Vec<Environment>>,
}

/// The first chunk of an integration's next batch, planned from its read-ahead while this
/// batch's last chunk was written, against the settings and the state that chunk was to
/// leave. Used only when the next claim finds exactly that: the same deliveries at the head
/// of its batch, the same settings and the same environments loaded under the lock; the
/// planner being pure, the plan is then the one planning them again would give.
pub(super) struct Speculation {
    ids: Vec<i64>,
    settings: Arc<Settings>,
    before: Vec<Environment>,
    after: Vec<Environment>,
    jobs: Vec<(Option<i64>, JobSpec)>,
    finished: Vec<Finished>,
}

/// Where a batch hands its expected end state: the settings it planned with and the
/// environments its last chunk leaves.
pub(super) type EndState = tokio::sync::oneshot::Sender<(Arc<Settings>, Vec<Environment>)>;

/// Plans `ahead` (the first chunk of the next batch, read ahead) against `before`.
pub(super) fn speculate(
    ahead: &[QueuedDelivery],
    settings: Arc<Settings>,
    before: Vec<Environment>,
) -> Result<Speculation, StoreError> {
    let (after, jobs, finished) = plan_all(ahead, &settings, before.clone())?;
    Ok(Speculation {
        ids: ahead.iter().map(|d| d.id).collect(),
        settings,
        before,
        after,
        jobs,
        finished,
    })
}

impl Speculation {
    /// The speculation as the first chunk of `first`, if it was planned for exactly that.
    fn take_for(
        self,
        first: Vec<QueuedDelivery>,
        settings: &Settings,
        before: &[Environment],
    ) -> Result<PlannedChunk, Vec<QueuedDelivery>> {
        let same_deliveries =
            self.ids.len() == first.len() && self.ids.iter().zip(&first).all(|(id, d)| *id == d.id);
        if same_deliveries && *self.settings == *settings && self.before == before {
            Ok(PlannedChunk {
                deliveries: first,
                before: self.before,
                after: self.after,
                jobs: self.jobs,
                finished: self.finished,
            })
        } else {
            Err(first)
        }
    }
}

/// Parses, plans and writes every delivery of `claim`, then commits.
/// With `refresh`, an Argo CD refresh is queued when the batch may change what the plugin
/// generator lists. `ahead` is this batch's first chunk planned in advance, if any; `end`,
/// where to send the state this batch expects to leave, for planning the next one ahead.
pub(super) async fn process(
    mut claim: Claim,
    refresh: bool,
    ahead: Option<Speculation>,
    mut end: Option<EndState>,
) -> Result<Vec<Outcome>, StoreError> {
    let integration_id = claim.integration_id.clone();
    let deliveries = std::mem::take(&mut claim.deliveries);
    let record = relay_store::integrations::get_in(claim.conn(), &integration_id).await?;
    let settings = Arc::new(record.settings);
    let before =
        relay_store::environments::load_for_planning(claim.conn(), &integration_id).await?;
    let writer = Writer {
        integration_id: &integration_id,
        settings: &settings,
        refresh,
    };
    let mut outcomes = Vec::with_capacity(deliveries.len());
    let mut chunks = split(deliveries, CHUNK).into_iter();
    let mut planned = match (chunks.next(), ahead) {
        (Some(first), Some(ahead)) => match ahead.take_for(first, &settings, &before) {
            Ok(chunk) => Some(chunk),
            Err(first) => Some(plan_chunk(first, &settings, before)?),
        },
        (Some(first), None) => Some(plan_chunk(first, &settings, before)?),
        (None, _) => None,
    };
    while let Some(chunk) = planned.take() {
        let following = chunks.next().map(|next| {
            let (settings, state) = (settings.clone(), chunk.after.clone());
            // The batch's span (integration, batch head) goes along, for the planner's logs.
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| plan_chunk(next, &settings, state))
            })
        });
        if following.is_none() {
            if let Some(end) = end.take() {
                // Nobody waiting (the read-ahead was replaced) is fine: nothing is planned.
                let _ = end.send((settings.clone(), chunk.after.clone()));
            }
        }
        let written = writer.write_chunk(claim.conn(), chunk).await?;
        outcomes.extend(written.finished.iter().map(|f| f.outcome));
        if let Some(handle) = following {
            let next = match handle.await {
                Ok(next) => next?,
                // A panic in the planner is a bug; it goes on unwinding as it would have
                // had the chunk been planned on this task.
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                // Cancelled: the runtime is shutting down. Nothing was committed.
                Err(_) => return Err(StoreError::Unavailable(sqlx::Error::PoolClosed)),
            };
            planned = Some(match written.replanned {
                None => next,
                Some(state) => plan_chunk(next.deliveries, &settings, state)?,
            });
        }
    }
    claim.commit().await?;
    Ok(outcomes)
}

/// `deliveries` in order, in vectors of at most `size`.
fn split(deliveries: Vec<QueuedDelivery>, size: usize) -> Vec<Vec<QueuedDelivery>> {
    let mut chunks = Vec::with_capacity(deliveries.len().div_ceil(size));
    let mut rest = deliveries.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(size).collect());
    }
    chunks
}

/// Plans `deliveries` in order, the first against `before`.
fn plan_chunk(
    deliveries: Vec<QueuedDelivery>,
    settings: &Settings,
    before: Vec<Environment>,
) -> Result<PlannedChunk, StoreError> {
    let (after, jobs, finished) = plan_all(&deliveries, settings, before.clone())?;
    Ok(PlannedChunk {
        deliveries,
        before,
        after,
        jobs,
        finished,
    })
}

/// The state `deliveries` leave when planned in order from `state`, their jobs and outcomes.
type Planning = (Vec<Environment>, Vec<(Option<i64>, JobSpec)>, Vec<Finished>);

fn plan_all(
    deliveries: &[QueuedDelivery],
    settings: &Settings,
    mut state: Vec<Environment>,
) -> Result<Planning, StoreError> {
    let mut jobs = Vec::new();
    let mut finished = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let planned = plan_delivery(delivery, settings, &mut state)?;
        jobs.extend(planned.jobs.into_iter().map(|job| (Some(delivery.id), job)));
        finished.push(planned.finished);
    }
    Ok((state, jobs, finished))
}

struct Writer<'a> {
    integration_id: &'a str,
    settings: &'a Settings,
    refresh: bool,
}

impl Writer<'_> {
    /// The fast path: the chunk's net environment changes, every job and every outcome
    /// written with one statement each, in one savepoint; delivery by delivery when the
    /// database refuses a value of it.
    async fn write_chunk(
        &self,
        conn: &mut PgConnection,
        chunk: PlannedChunk,
    ) -> Result<Written, StoreError> {
        let mut savepoint = conn.begin().await?;
        let result = self
            .write(
                &mut savepoint,
                &chunk.before,
                &chunk.after,
                &chunk.jobs,
                &chunk.finished,
            )
            .await;
        match result {
            Ok(written) => {
                savepoint.commit().await?;
                tracing::info!(
                    deliveries = chunk.finished.len(),
                    environments_written = written,
                    jobs = chunk.jobs.len(),
                    "batch processed"
                );
                Ok(Written {
                    finished: chunk.finished,
                    replanned: None,
                })
            }
            Err(StoreError::Rejected(reason)) => {
                savepoint.rollback().await?;
                tracing::warn!(error = %reason, "the database refused the batch; writing its deliveries one by one");
                let (finished, after) = self
                    .write_one_by_one(conn, &chunk.deliveries, chunk.before)
                    .await?;
                Ok(Written {
                    finished,
                    replanned: Some(after),
                })
            }
            Err(err) => {
                savepoint.rollback().await?;
                Err(err)
            }
        }
    }

    /// The careful path: each delivery planned against what the previous ones really wrote,
    /// and written in its own savepoint. Returns the outcomes and the state written.
    async fn write_one_by_one(
        &self,
        conn: &mut PgConnection,
        deliveries: &[QueuedDelivery],
        mut current: Vec<Environment>,
    ) -> Result<(Vec<Finished>, Vec<Environment>), StoreError> {
        let mut finished = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let mut next = current.clone();
            let planned = plan_delivery(delivery, self.settings, &mut next)?;
            let jobs: Vec<(Option<i64>, JobSpec)> = planned
                .jobs
                .into_iter()
                .map(|job| (Some(delivery.id), job))
                .collect();
            let mut savepoint = conn.begin().await?;
            let outcome = std::slice::from_ref(&planned.finished);
            match self
                .write(&mut savepoint, &current, &next, &jobs, outcome)
                .await
            {
                Ok(_) => {
                    savepoint.commit().await?;
                    current = next;
                    finished.push(planned.finished);
                }
                Err(StoreError::Rejected(reason)) => {
                    savepoint.rollback().await?;
                    tracing::warn!(delivery.id = delivery.id, error = %reason, "the database refused a value of this delivery; failed");
                    let failed = Finished {
                        delivery_id: delivery.id,
                        outcome: Outcome::Failed,
                        decisions: None,
                        error: Some(format!(
                            "the database refused a value of this delivery: {reason}"
                        )),
                    };
                    queue::record_outcomes(conn, std::slice::from_ref(&failed)).await?;
                    finished.push(failed);
                }
                Err(err) => {
                    savepoint.rollback().await?;
                    return Err(err);
                }
            }
        }
        Ok((finished, current))
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        before: &[Environment],
        after: &[Environment],
        jobs: &[(Option<i64>, JobSpec)],
        finished: &[Finished],
    ) -> Result<usize, StoreError> {
        let written =
            relay_store::environments::write_changes(conn, self.integration_id, before, after)
                .await?;
        let tagged: Vec<(Option<i64>, &JobSpec)> = jobs.iter().map(|(d, j)| (*d, j)).collect();
        relay_store::jobs::insert_tagged(conn, self.integration_id, &tagged).await?;
        if self.refresh {
            refresh_argocd(conn, self.integration_id, before, after, jobs).await?;
        }
        queue::record_outcomes(conn, finished).await?;
        Ok(written)
    }
}

/// Queues an Argo CD refresh when the batch may change the plugin generator's answer: behind
/// the batch's git jobs in their lane, and only one while it is pending (a burst costs one).
async fn refresh_argocd(
    conn: &mut PgConnection,
    integration_id: &str,
    before: &[Environment],
    after: &[Environment],
    jobs: &[(Option<i64>, JobSpec)],
) -> Result<(), StoreError> {
    let planned = jobs.iter().map(|(_, job)| job);
    if crate::argocd::output_changed(before, after, planned) {
        let job = JobSpec::RefreshApplicationSets { retry: false };
        relay_store::argocd::queue_refresh(conn, integration_id, &job).await?;
    }
    Ok(())
}

/// Parses and plans one delivery against `current`, which becomes the state its plan
/// produced.
fn plan_delivery(
    delivery: &QueuedDelivery,
    settings: &Settings,
    current: &mut Vec<Environment>,
) -> Result<Planned, StoreError> {
    let span =
        tracing::info_span!("delivery", delivery.id = delivery.id, event.key = %delivery.event_key);
    let _entered = span.enter();
    let finished = |outcome, decisions, error| Finished {
        delivery_id: delivery.id,
        outcome,
        decisions,
        error,
    };
    let event = match parse(delivery) {
        // A body that does not parse will never parse: record why, do not retry.
        Err(err) => {
            tracing::warn!(error = %err, "delivery cannot be parsed");
            return Ok(Planned {
                finished: finished(Outcome::Failed, None, Some(err)),
                jobs: Vec::new(),
            });
        }
        Ok(event) => event,
    };
    let (outcome, decisions, jobs) = match event {
        Event::Ignored { reason, .. } => {
            tracing::info!(reason = %reason, "event ignored");
            (Outcome::Ignored, json!({ "notes": [reason] }), Vec::new())
        }
        Event::Ping => (
            Outcome::Ignored,
            json!({ "notes": ["diagnostics ping"] }),
            Vec::new(),
        ),
        event => {
            // The planner's "now" is the delivery's receipt time, so a redelivered one is
            // planned against the same time.
            let context = PlanContext {
                now_ms: Some(delivery.received_at.timestamp_millis()),
            };
            let plan: Plan = relay_core::plan_at(settings, &event, current, context);
            *current = plan.apply(current);
            tracing::info!(
                changes = plan.changes.len(),
                jobs = plan.jobs.len(),
                notes = plan.notes.len(),
                "delivery planned"
            );
            let decisions = serde_json::to_value(&plan)
                .map_err(|e| StoreError::Corrupt(format!("plan cannot be encoded: {e}")))?;
            (Outcome::Processed, decisions, plan.jobs)
        }
    };
    Ok(Planned {
        finished: finished(outcome, Some(decisions), None),
        jobs,
    })
}

fn parse(delivery: &QueuedDelivery) -> Result<Event, String> {
    // The relay's own deliveries (snapshots, transitions) carry a serialized event.
    if relay_core::event::is_internal(&delivery.event_key) {
        let event = serde_json::from_slice::<Event>(&delivery.body).map_err(|e| e.to_string())?;
        relay_core::event::check_storable(&event).map_err(|e| e.to_string())?;
        Ok(event)
    } else {
        relay_core::parse(&delivery.event_key, &delivery.body).map_err(|e| e.to_string())
    }
}
