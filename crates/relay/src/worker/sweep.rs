//! The periodic sweep of idle environments (`environment_idle_ttl`): every
//! `RELAY_ENVIRONMENT_SWEEP_SECS` (default 60, ±20 % jitter), queue a `relay:sweep` delivery
//! for each integration with something idle past its TTL. At most one sweep waits per
//! integration however many relays run (a unique index), and the planner decides in the
//! integration's delivery order, so each environment expires once.

use std::time::Duration;

use rand::Rng;
use relay_core::Event;
use relay_store::{PgPool, StoreError};
use tokio_util::sync::CancellationToken;

pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    loop {
        let wait = interval.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match queue(&pool).await {
            Ok(queued) => tracing::debug!(queued, "environment sweep queued"),
            Err(err) => tracing::warn!(error = %err, "cannot queue the environment sweep"),
        }
    }
}

/// Queues the sweeps due now; how many were queued.
pub async fn queue(pool: &PgPool) -> Result<u64, StoreError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let body = serde_json::to_vec(&Event::Sweep { now_ms })
        .map_err(|e| StoreError::Corrupt(format!("sweep cannot be encoded: {e}")))?;
    relay_store::deliveries::queue_sweeps(pool, now_ms, &body).await
}
