//! The floor under ingest: what the machine spends per delivery on the two parts every relay
//! that answers over HTTP only after the delivery's row has committed must pay, each measured
//! alone. One is the bare HTTP exchange (the bare axum phase: load generator, server and the
//! signature check); the other is the relay's own multi-row INSERT with no HTTP in front of
//! it, with as many rows per statement as the senders can have in flight at once (the least
//! it costs per row: bigger statements cost less per row, and none can be bigger). Their sum,
//! against the INSERT baseline's busy CPU per row, is the most any such relay could reach on
//! this machine with every core busy and nothing else to do. (`COPY ... FROM STDIN (FORMAT
//! binary)` with the ids drawn first, since COPY has no RETURNING, cost more per row than this
//! INSERT: 58-65 against 48-52 µs at 2 × 32 rows, two alternating pairs.)

use std::time::{Duration, Instant};

use axum::body::Bytes;
use relay_store::deliveries::{self, InsertOutcome, NewDelivery};
use secrecy::SecretString;

use crate::load::Report;
use crate::meter::{Meter, PhaseCost};

/// Stores `rows`-row statements on one connection for `duration` into an integration of its
/// own, removed (with its rows) afterwards so that the relay's phases start as before.
pub(crate) async fn store_alone(
    pool: &sqlx::PgPool,
    key: &str,
    bodies: &[(String, Vec<u8>)],
    rows: usize,
    duration: Duration,
    inserts: &Report,
) -> anyhow::Result<(PhaseCost, f64)> {
    let key = relay::secrets::SecretKey::parse(&SecretString::from(key))?;
    let created = crate::add_integration(pool, &key, "bench/floor").await?;
    let integration = created.record.id.to_string();
    let meter = Meter::start(pool, None).await;
    let report = store_for(pool, &integration, bodies, rows, duration).await?;
    println!(
        "the relay's INSERT alone, {rows} rows per statement: {:.0} rows/s ({} failed)",
        report.per_second(),
        report.errors
    );
    let cost = meter.stop(pool, &report, inserts).await;
    relay_store::integrations::delete(pool, &integration).await?;
    sqlx::query("VACUUM deliveries").execute(pool).await?;
    Ok((cost, report.per_second() / inserts.per_second()))
}

async fn store_for(
    pool: &sqlx::PgPool,
    integration: &str,
    bodies: &[(String, Vec<u8>)],
    rows: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let bodies: Vec<(String, Bytes)> = bodies
        .iter()
        .map(|(key, body)| (key.clone(), Bytes::from(body.clone())))
        .collect();
    let mut conn = pool.acquire().await?;
    let (mut sequence, mut latencies, mut errors) = (0u64, Vec::new(), 0u64);
    let started = Instant::now();
    while started.elapsed() < duration {
        let batch = next_batch(integration, &bodies, &mut sequence, rows);
        let sent = Instant::now();
        for outcome in deliveries::insert_batch(&mut conn, &batch).await {
            match outcome {
                Ok(InsertOutcome::Stored(_)) => latencies.push(sent.elapsed()),
                _ => errors += 1,
            }
        }
    }
    Ok(Report {
        accepted: latencies.len() as u64,
        errors,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Rows as the webhook handler hands them over: the kept headers as JSON, the body shared.
fn next_batch(
    integration: &str,
    bodies: &[(String, Bytes)],
    sequence: &mut u64,
    rows: usize,
) -> Vec<NewDelivery> {
    (0..rows)
        .map(|_| {
            let n = *sequence;
            *sequence += 1;
            let (event_key, body) = &bodies[usize::try_from(n).unwrap_or(0) % bodies.len()];
            let request_id = format!("floor-{n}");
            NewDelivery {
                integration_id: integration.to_owned(),
                headers: serde_json::json!({
                    "x-event-key": event_key,
                    "x-request-uuid": request_id,
                    "content-type": "application/json",
                }),
                request_id: Some(request_id),
                event_key: event_key.clone(),
                body: body.clone(),
            }
        })
        .collect()
}
