//! The next batch read ahead while the current one is written: taken only where the claim
//! confirms it under the lock, so a stale read-ahead never changes order or exactly-once.

use std::sync::Arc;
use std::time::Duration;

use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use relay_store::queue::{self, ReadAhead};
use sqlx::PgPool;

use crate::support::*;

async fn store_pushes(pool: &PgPool, integration: &str, count: usize) -> Vec<i64> {
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let mut ids = Vec::new();
    for n in 0..count {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO deliveries (integration_id, request_id, event_key, body) VALUES ($1, $2, 'repo:push', $3) RETURNING id",
        )
        .bind(integration)
        .bind(format!("{integration}-{n}-{}", unique()))
        .bind(&body)
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

/// A number no other call in this test binary gets, for request ids.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Claims and finishes (as processed) the next batch of at most `max`; returns its ids.
async fn finish_next(pool: &PgPool, max: i64, ahead: Option<ReadAhead>) -> Vec<i64> {
    let claim = queue::claim_batch(pool, max, &[], ahead)
        .await
        .unwrap()
        .expect("something to claim");
    finish_as_processed(claim).await
}

async fn attempts(pool: &PgPool, ids: &[i64]) -> Vec<i32> {
    sqlx::query_scalar("SELECT attempts FROM deliveries WHERE id = ANY($1) ORDER BY id")
        .bind(ids)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_confirmed_read_ahead_is_claimed_with_its_attempts_as_they_are_now(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 8).await;
    assert_eq!(finish_next(&pool, 3, None).await, ids[..3]);
    let ahead = ReadAhead::read(&pool, &cloud.id, ids[2], 1000)
        .await
        .unwrap();
    assert_eq!(ahead.len(), 5);
    // A transient failure recorded after the read (due again at once) must be seen.
    queue::record_retry(&pool, ids[3], "connection reset", Duration::ZERO, 8)
        .await
        .unwrap();
    let claim = queue::claim_batch(&pool, 1000, &[], Some(ahead))
        .await
        .unwrap()
        .unwrap();
    let claimed: Vec<(i64, i32)> = claim
        .deliveries
        .iter()
        .map(|d| (d.id, d.attempts))
        .collect();
    let expected: Vec<(i64, i32)> = ids[3..]
        .iter()
        .map(|&id| (id, if id == ids[3] { 1 } else { 0 }))
        .collect();
    assert_eq!(claimed, expected);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_read_ahead_behind_an_older_pending_delivery_is_not_taken(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 6).await;
    assert_eq!(finish_next(&pool, 3, None).await, ids[..3]);
    let ahead = ReadAhead::read(&pool, &cloud.id, ids[2], 1000)
        .await
        .unwrap();
    // An older delivery back in the queue goes first, as it would without the read-ahead.
    queue::redeliver(&pool, ids[1]).await.unwrap();
    let claimed = finish_next(&pool, 1000, Some(ahead)).await;
    assert_eq!(claimed, [ids[1], ids[3], ids[4], ids[5]]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_stale_read_ahead_never_processes_a_delivery_twice(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 6).await;
    assert_eq!(finish_next(&pool, 3, None).await, ids[..3]);
    let stale = ReadAhead::read(&pool, &cloud.id, ids[2], 1000)
        .await
        .unwrap();
    // Another relay processes what was read ahead; then new deliveries arrive.
    assert_eq!(finish_next(&pool, 1000, None).await, ids[3..]);
    let newer = store_pushes(&pool, &cloud.id, 2).await;
    assert_eq!(finish_next(&pool, 1000, Some(stale)).await, newer);
    assert_eq!(
        attempts(&pool, &ids).await,
        vec![1; 6],
        "each processed once"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_read_ahead_stops_where_a_delivery_waits_out_its_backoff(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 7).await;
    assert_eq!(finish_next(&pool, 2, None).await, ids[..2]);
    let ahead = ReadAhead::read(&pool, &cloud.id, ids[1], 1000)
        .await
        .unwrap();
    queue::record_retry(&pool, ids[4], "timeout", Duration::from_secs(3600), 8)
        .await
        .unwrap();
    assert_eq!(finish_next(&pool, 1000, Some(ahead)).await, ids[2..4]);
    assert!(
        queue::claim_batch(&pool, 1000, &[], None)
            .await
            .unwrap()
            .is_none(),
        "the rest waits behind the delivery in backoff"
    );
}

/// A backlog larger than the batch size, drained by a processor (which reads each next batch
/// ahead): every delivery processed once, in order, a batch at a time.
#[sqlx::test(migrations = "../../migrations")]
async fn a_backlog_drained_with_read_ahead_keeps_order_and_exactly_once(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 23).await;
    let processor = Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig {
            batch_size: 5,
            ..ProcessorConfig::default()
        },
    );
    assert_eq!(crate::processing::drain(&processor).await, 23);
    let rows: Vec<(i64, String, i32)> =
        sqlx::query_as("SELECT id, status, attempts FROM deliveries ORDER BY processed_at, id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let order: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(order, ids, "processed in arrival order");
    assert!(
        rows.iter().all(|r| r.1 == "processed" && r.2 == 1),
        "each processed exactly once: {rows:?}"
    );
    let batches: i64 = sqlx::query_scalar("SELECT count(DISTINCT processed_at) FROM deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(batches, 5, "four full batches and the rest");
}
