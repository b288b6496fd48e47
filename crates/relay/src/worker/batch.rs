//! Plans one claim (one integration's next deliveries) and writes the result.
//!
//! The batch is planned in order against the state the previous deliveries produced and
//! written in one savepoint of the claim's transaction. When the database refuses a value
//! of the batch (`StoreError::Rejected`: a data exception that the parser's checks did not
//! catch), retrying the same write cannot help and charging it to the oldest delivery would
//! fail an innocent one; so the batch is written again delivery by delivery, each in its own
//! savepoint: the refused one is marked `failed` at once with the reason, the others are
//! processed in order.

use relay_core::{Environment, Event, JobSpec, Plan, PlanContext, Settings};
use relay_store::queue::{self, Claim, Finished, Outcome, QueuedDelivery};
use relay_store::StoreError;
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// One delivery's outcome and the jobs it decided.
struct Planned {
    finished: Finished,
    jobs: Vec<JobSpec>,
}

/// Parses, plans and writes every delivery of `claim`, then commits.
/// With `refresh`, an Argo CD refresh is queued when the batch may change what the plugin
/// generator lists.
pub(super) async fn process(mut claim: Claim, refresh: bool) -> Result<Vec<Outcome>, StoreError> {
    let integration_id = claim.integration_id.clone();
    let deliveries = std::mem::take(&mut claim.deliveries);
    let record = relay_store::integrations::get_in(claim.conn(), &integration_id).await?;
    let settings = record.settings;
    let before =
        relay_store::environments::load_for_planning(claim.conn(), &integration_id).await?;
    let batch = Batch {
        integration_id: &integration_id,
        settings: &settings,
        before: &before,
        deliveries: &deliveries,
        refresh,
    };
    let finished = match batch.write_together(claim.conn()).await {
        Err(StoreError::Rejected(reason)) => {
            tracing::warn!(error = %reason, "the database refused the batch; writing its deliveries one by one");
            batch.write_one_by_one(claim.conn()).await?
        }
        other => other?,
    };
    claim.commit().await?;
    Ok(finished.iter().map(|f| f.outcome).collect())
}

struct Batch<'a> {
    integration_id: &'a str,
    settings: &'a Settings,
    before: &'a [Environment],
    deliveries: &'a [QueuedDelivery],
    refresh: bool,
}

impl Batch<'_> {
    /// The fast path: every delivery planned, then the net environment changes, every job
    /// and every outcome written with one statement each.
    async fn write_together(&self, conn: &mut PgConnection) -> Result<Vec<Finished>, StoreError> {
        let mut current = self.before.to_vec();
        let mut jobs: Vec<(Option<i64>, JobSpec)> = Vec::new();
        let mut finished = Vec::with_capacity(self.deliveries.len());
        for delivery in self.deliveries {
            let planned = plan_delivery(delivery, self.settings, &mut current)?;
            jobs.extend(planned.jobs.into_iter().map(|job| (Some(delivery.id), job)));
            finished.push(planned.finished);
        }
        let mut savepoint = conn.begin().await?;
        let written = match self
            .write(&mut savepoint, self.before, &current, &jobs, &finished)
            .await
        {
            Ok(written) => written,
            Err(err) => {
                savepoint.rollback().await?;
                return Err(err);
            }
        };
        savepoint.commit().await?;
        tracing::info!(
            deliveries = finished.len(),
            environments_written = written,
            jobs = jobs.len(),
            "batch processed"
        );
        Ok(finished)
    }

    /// The careful path: each delivery planned against what the previous ones really wrote,
    /// and written in its own savepoint.
    async fn write_one_by_one(&self, conn: &mut PgConnection) -> Result<Vec<Finished>, StoreError> {
        let mut current = self.before.to_vec();
        let mut finished = Vec::with_capacity(self.deliveries.len());
        for delivery in self.deliveries {
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
        Ok(finished)
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
