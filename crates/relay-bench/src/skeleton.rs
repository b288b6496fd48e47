//! The least a relay of this design can do per webhook under the bench's own load: read the
//! body, verify the signature, hand the row to the relay's own group-commit writers
//! (`relay::http::ingest::Ingestor`, with as many writers as the relay) and answer once its
//! statement has committed. No credential lookup, no JSON check, no tracing span, no per
//! request metrics: the relay's ingest minus everything it could ever leave out.
//!
//! Unlike the floor (`floor`), which adds up parts measured alone, this is measured as the
//! relay is, under the same closed loop of senders: its statements hold what queues up while
//! the previous one commits, and its cores sit idle when every sender waits on a commit. Its
//! rate against the INSERT baseline is the most the relay's ingest could reach on this
//! machine under this load.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use relay::http::ingest::Ingestor;
use relay::metrics::Metrics;
use relay_store::deliveries::{InsertOutcome, NewDelivery};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::load::{Load, Report};
use crate::meter::{Meter, PhaseCost};

struct Skeleton {
    secret: String,
    integration: String,
    ingestor: Ingestor,
}

/// Runs the load against the skeleton for `duration`, into an integration of its own removed
/// (with its rows) afterwards. Returns what the phase cost and its rate / the baseline's.
pub(crate) async fn run(
    pool: &sqlx::PgPool,
    key: &str,
    bodies: &[(String, Vec<u8>)],
    concurrency: usize,
    duration: Duration,
    inserts: &Report,
) -> anyhow::Result<(PhaseCost, f64)> {
    let key = relay::secrets::SecretKey::parse(&SecretString::from(key))?;
    let created = crate::add_integration(pool, &key, "bench/skeleton").await?;
    let integration = created.record.id.to_string();
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(Skeleton {
        secret: created.webhook_secret.clone(),
        integration: integration.clone(),
        ingestor: Ingestor::start(pool.clone(), metrics.clone(), crate::group_commit()),
    });
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
    });
    let meter = Meter::start(pool, Some(&metrics)).await;
    let report = Load::new(
        format!("http://{addr}/hook"),
        &created.webhook_secret,
        bodies.to_vec(),
        concurrency,
    )
    .with_request_prefix("skeleton-")
    .run(duration)
    .await;
    crate::print_report("skeleton relay", &report, Some(inserts), None);
    let cost = meter.stop(pool, &report, inserts).await;
    // The server's state holds the writers (and their connections) until it is gone.
    stop.cancel();
    server.await??;
    relay_store::integrations::delete(pool, &integration).await?;
    sqlx::query("VACUUM deliveries").execute(pool).await?;
    Ok((cost, report.per_second() / inserts.per_second()))
}

async fn receive(
    State(skeleton): State<Arc<Skeleton>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = headers.get("x-hub-signature").map(|v| v.as_bytes());
    if relay_core::verify_signature(skeleton.secret.as_bytes(), &body, signature).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let event_key = header("x-event-key").unwrap_or_default().to_owned();
    let request_id = header("x-request-uuid").map(str::to_owned);
    let delivery = NewDelivery {
        integration_id: skeleton.integration.clone(),
        headers: serde_json::json!({
            "x-event-key": event_key,
            "x-request-uuid": request_id,
            "content-type": "application/json",
        }),
        request_id,
        event_key,
        body,
    };
    match skeleton.ingestor.store(delivery).await {
        Ok(InsertOutcome::Stored(_)) => StatusCode::ACCEPTED,
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
