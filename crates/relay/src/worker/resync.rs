//! The periodic resync: every interval (±20 % jitter, so replicas and integrations spread
//! out), queue a reconciliation for every integration that has none waiting.

use std::time::Duration;

use rand::Rng;
use relay_store::PgPool;
use tokio_util::sync::CancellationToken;

pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    loop {
        let wait = interval.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match relay_store::jobs::enqueue_periodic_reconciles(&pool).await {
            Ok(queued) => tracing::debug!(queued, "periodic resync queued"),
            Err(err) => tracing::warn!(error = %err, "cannot queue the periodic resync"),
        }
    }
}
