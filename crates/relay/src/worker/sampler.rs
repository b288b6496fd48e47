//! Samples queue depth, lag and environment counts into gauges every few seconds: cheaper
//! than counting on every scrape, and the same value for every replica's /metrics.

use std::sync::Arc;
use std::time::Duration;

use relay_store::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

pub async fn run(
    pool: PgPool,
    metrics: Arc<Metrics>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let sampled = sample(&pool, &metrics).await;
        if let Err(err) = &sampled {
            tracing::debug!(error = %err, "cannot sample queue metrics");
        }
        metrics.set_ready(sampled.is_ok());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

pub async fn sample(pool: &PgPool, metrics: &Metrics) -> Result<(), relay_store::StoreError> {
    let stats = relay_store::queue::stats(pool).await?;
    metrics.set_queue(stats.pending, stats.oldest_pending_secs);
    let counts = relay_store::environments::count_by_status(pool).await?;
    metrics.set_environments(&counts);
    let circuits: Vec<(String, String, relay_store::CircuitState)> =
        relay_store::circuits::list(pool, None)
            .await?
            .into_iter()
            .map(|c| (c.integration_id, c.target, c.state))
            .collect();
    metrics.set_circuits(&circuits);
    Ok(())
}
