//! The queue's watermark (`delivery_watermarks.below`): the claim's probe starts there, so it
//! must never pass a delivery that is pending or can still commit, whatever order
//! deliveries commit in and whatever is set back to pending.

use relay_core::IntegrationType;
use relay_store::queue;
use sqlx::{PgConnection, PgPool};

use crate::support::*;

fn push_body() -> Vec<u8> {
    std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap()
}

async fn store_push(conn: &mut PgConnection, integration: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO deliveries (integration_id, event_key, body) VALUES ($1, 'repo:push', $2) RETURNING id",
    )
    .bind(integration)
    .bind(push_body())
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn store_pushes(pool: &PgPool, integration: &str, count: usize) -> Vec<i64> {
    let mut conn = pool.acquire().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(store_push(&mut conn, integration).await);
    }
    ids
}

/// Claims and finishes (as processed) the next batch of at most `max`; returns its ids.
async fn finish_next(pool: &PgPool, max: i64) -> Vec<i64> {
    let Some(claim) = queue::claim_batch(pool, max, &[], None).await.unwrap() else {
        return Vec::new();
    };
    finish_as_processed(claim).await
}

async fn below(pool: &PgPool, integration: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT below FROM delivery_watermarks WHERE integration_id = $1")
        .bind(integration)
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Processes one new delivery at a time until the watermark reaches `target`. Other tests'
/// transactions on the same server can hold it back for a moment (snapshots span databases),
/// never past a pending delivery.
async fn process_until_below_reaches(pool: &PgPool, integration: &str, target: i64) {
    for _ in 0..200 {
        if below(pool, integration).await >= target {
            return;
        }
        store_pushes(pool, integration, 1).await;
        finish_next(pool, 1000).await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the watermark never reached {target}");
}

async fn pending(pool: &PgPool, integration: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE integration_id = $1 AND status = 'pending' ORDER BY id",
    )
    .bind(integration)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_watermark_follows_processing_one_claim_behind(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 9).await;
    assert_eq!(finish_next(&pool, 3).await, ids[..3]);
    // The first claim only records what it saw: nothing is known settled yet.
    assert_eq!(below(&pool, &cloud.id).await, 0);
    assert_eq!(finish_next(&pool, 3).await, ids[3..6]);
    assert_eq!(finish_next(&pool, 3).await, ids[6..]);
    let reached = below(&pool, &cloud.id).await;
    assert!(
        reached <= ids[8] + 1,
        "never past a delivery not processed: {reached}"
    );
    process_until_below_reaches(&pool, &cloud.id, ids[6]).await;
    assert!(pending(&pool, &cloud.id).await.is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_with_every_id_from_the_watermark_moves_it_past_the_batch(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    // Once the watermark has caught up with the queue's start (other tests' transactions
    // can hold that back for a moment), a gapless batch from there moves it past its end.
    for _ in 0..200 {
        let before = below(&pool, &cloud.id).await;
        let ids = store_pushes(&pool, &cloud.id, 3).await;
        assert_eq!(finish_next(&pool, 1000).await, ids);
        if before == ids[0] {
            assert_eq!(below(&pool, &cloud.id).await, ids[2] + 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the watermark never caught up with the queue's start");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_with_a_gap_is_not_jumped_over(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let other = add_integration(&pool, IntegrationType::Cloud).await;
    let mut conn = pool.acquire().await.unwrap();
    for _ in 0..200 {
        let before = below(&pool, &cloud.id).await;
        let first = store_push(&mut conn, &cloud.id).await;
        if before != first {
            // The watermark has not caught up with the queue's start yet.
            finish_next(&pool, 1000).await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        }
        // A writer holding an id between two of this integration's deliveries, then giving
        // up: the id is never used, and the batch around it has a gap that, as far as the
        // claim can tell, could still hold a delivery of this integration.
        let mut gap = pool.begin().await.unwrap();
        let gap_id = store_push(&mut gap, &other.id).await;
        let second = store_push(&mut conn, &cloud.id).await;
        gap.rollback().await.unwrap();
        assert!(first < gap_id && gap_id < second);
        assert_eq!(finish_next(&pool, 1000).await, [first, second]);
        assert!(below(&pool, &cloud.id).await <= first);
        return;
    }
    panic!("the watermark never caught up with the queue's start");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_delivery_committed_late_with_a_lower_id_is_still_claimed(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    // A writer that has taken its delivery's id but not committed (as one of two ingest
    // writers can be while the other's batch is claimed and processed).
    let mut late = pool.begin().await.unwrap();
    let late_id = store_push(&mut late, &cloud.id).await;
    let after = store_pushes(&pool, &cloud.id, 3).await;
    assert!(after[0] > late_id);
    assert_eq!(finish_next(&pool, 2).await, after[..2]);
    // Claim after claim while it is still open: the watermark may not pass its id.
    for _ in 0..5 {
        let more = store_pushes(&pool, &cloud.id, 2).await;
        assert!(!finish_next(&pool, 1000).await.is_empty());
        assert!(more.iter().all(|id| *id > late_id));
        let reached = below(&pool, &cloud.id).await;
        assert!(
            reached <= late_id,
            "the watermark {reached} passed {late_id}"
        );
    }
    late.commit().await.unwrap();
    let next = store_pushes(&pool, &cloud.id, 1).await;
    assert_eq!(finish_next(&pool, 1000).await, [late_id, next[0]]);
    assert!(pending(&pool, &cloud.id).await.is_empty());
    process_until_below_reaches(&pool, &cloud.id, next[0]).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_delivery_set_back_to_pending_below_the_watermark_is_claimed_next(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 4).await;
    assert_eq!(finish_next(&pool, 1000).await, ids);
    process_until_below_reaches(&pool, &cloud.id, ids[3] + 1).await;
    queue::redeliver(&pool, ids[1]).await.unwrap();
    assert!(below(&pool, &cloud.id).await <= ids[1]);
    let newer = store_pushes(&pool, &cloud.id, 1).await;
    assert_eq!(finish_next(&pool, 1000).await, [ids[1], newer[0]]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_advance_computed_before_a_redelivery_is_void(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let ids = store_pushes(&pool, &cloud.id, 3).await;
    assert_eq!(finish_next(&pool, 1).await, ids[..1]);
    assert_eq!(finish_next(&pool, 1).await, ids[1..2]);
    process_until_below_reaches(&pool, &cloud.id, ids[1]).await;
    let newer = store_pushes(&pool, &cloud.id, 2).await;
    // Probed before the redelivery, finished after it: what the probe saw is out of date.
    let claim = queue::claim_batch(&pool, 1000, &[], None)
        .await
        .unwrap()
        .unwrap();
    queue::redeliver(&pool, ids[1]).await.unwrap();
    finish_as_processed(claim).await;
    assert!(below(&pool, &cloud.id).await <= ids[1]);
    assert_eq!(pending(&pool, &cloud.id).await, [ids[1]]);
    assert_eq!(finish_next(&pool, 1000).await, [ids[1]]);
    assert!(newer.iter().all(|id| *id > ids[1]));
}
