//! Deliveries that cannot be processed: bodies that never parse, rows the planner cannot
//! read, transient store failures retried with backoff and then parked; none of them blocks
//! the deliveries behind it for long.

use std::sync::Arc;
use std::time::Duration;

use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::processing::{drain, post_fixture, processor, status_of};
use crate::support::*;

#[sqlx::test(migrations = "../../migrations")]
async fn unparseable_deliveries_fail_with_a_reason_and_do_not_block(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let processor = processor(&pool);
    let body = br#"{"push": "not an object"}"#;
    let response = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "repo:push",
        "bad",
        body,
        Some(sign(&cloud.webhook_secret, body)),
    )
    .await;
    let bad: serde_json::Value = response.json().await.unwrap();
    let bad = bad["delivery_id"].as_i64().unwrap();
    let unknown_body = br#"{"x": 1}"#;
    let response = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "repo:teleported",
        "unknown",
        unknown_body,
        Some(sign(&cloud.webhook_secret, unknown_body)),
    )
    .await;
    let unknown: serde_json::Value = response.json().await.unwrap();
    let unknown = unknown["delivery_id"].as_i64().unwrap();
    let good = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "push_branch_create.json",
        "repo:push",
        "good",
    )
    .await;

    assert_eq!(drain(&processor).await, 3);
    let (status, error, attempts) = status_of(&pool, bad).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().to_lowercase().contains("push"));
    assert_eq!(attempts, 1, "a permanent failure is not retried");
    let (status, error, _) = status_of(&pool, unknown).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("repo:teleported"));
    assert_eq!(status_of(&pool, good).await.0, "processed");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_corrupt_row_parks_the_delivery_and_others_go_on(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let broken = add_integration(&pool, IntegrationType::Cloud).await;
    let healthy = add_integration(&pool, IntegrationType::Cloud).await;
    sqlx::query("INSERT INTO environments (integration_id, name, kind, status, head_commit) VALUES ($1, 'x', 'branch', 'active', 'not-a-hash')")
        .bind(&broken.id)
        .execute(&pool)
        .await
        .unwrap();
    let processor = processor(&pool);
    let parked = post_fixture(
        &server,
        &broken,
        IntegrationType::Cloud,
        "push_branch_create.json",
        "repo:push",
        "p1",
    )
    .await;
    let fine = post_fixture(
        &server,
        &healthy,
        IntegrationType::Cloud,
        "push_branch_create.json",
        "repo:push",
        "p2",
    )
    .await;
    drain(&processor).await;
    let (status, error, _) = status_of(&pool, parked).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("head_commit"));
    assert_eq!(status_of(&pool, fine).await.0, "processed");
}

#[sqlx::test(migrations = "../../migrations")]
async fn transient_failures_retry_with_backoff_then_park(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let first = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "push_branch_create.json",
        "repo:push",
        "t1",
    )
    .await;

    // A processor whose statements give up quickly, and a lock that makes them give up.
    let url = format!("{}?options=-c%20lock_timeout%3D200", database_url(&pool));
    let impatient = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let retry = relay::worker::retry::RetrySchedule {
        // Long enough that a slow machine's next call still falls inside the backoff.
        delays: vec![Duration::from_millis(400)],
        max_attempts: 3,
    };
    let processor = Processor::new(
        impatient,
        Arc::new(Metrics::new()),
        ProcessorConfig {
            retry,
            ..ProcessorConfig::default()
        },
    );
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE environments IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    assert!(processor.process_next().await.unwrap() > 0);
    let (status, error, attempts) = status_of(&pool, first).await;
    assert_eq!((status.as_str(), attempts), ("pending", 1), "{error:?}");
    assert!(error.unwrap().contains("lock"));
    assert!(
        processor.process_next().await.unwrap() == 0,
        "backoff holds it back"
    );

    // The lock goes away: the retry succeeds.
    blocker.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(processor.process_next().await.unwrap() > 0);
    assert_eq!(status_of(&pool, first).await.0, "processed");

    // Failing every time: parked as failed after the last attempt, and the next one goes on.
    let doomed = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "push.json",
        "repo:push",
        "t2",
    )
    .await;
    let next = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_created.json",
        "pullrequest:created",
        "t3",
    )
    .await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE environments IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(processor.process_next().await.unwrap() > 0);
    }
    blocker.rollback().await.unwrap();
    let (status, _, attempts) = status_of(&pool, doomed).await;
    assert_eq!((status.as_str(), attempts), ("failed", 3));
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(status_of(&pool, next).await.0, "processed");
}

/// A transient failure recorded after the failed claim rolled back, by which time another
/// worker may have claimed the integration and finished the delivery: the outcome stands and
/// the delivery is not queued again.
#[sqlx::test(migrations = "../../migrations")]
async fn a_late_retry_record_leaves_a_finished_delivery_alone(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let delivery = relay_store::deliveries::NewDelivery {
        integration_id: cloud.id.clone(),
        request_id: Some("late".into()),
        event_key: "repo:push".into(),
        headers: serde_json::json!({}),
        body: bytes::Bytes::from_static(b"{}"),
    };
    let id = match relay_store::deliveries::insert(&pool, &delivery)
        .await
        .unwrap()
    {
        relay_store::deliveries::InsertOutcome::Stored(id) => id,
        other => panic!("{other:?}"),
    };
    sqlx::query("UPDATE deliveries SET status = 'processed', attempts = 1 WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let parked =
        relay_store::queue::record_retry(&pool, id, "connection reset", Duration::from_secs(1), 8)
            .await
            .unwrap();
    assert!(!parked);
    let (status, attempts, error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, last_error FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts, error), ("processed", 1, None));
}

/// A batch holds at most 16 MB of bodies (its first delivery whatever its size), so a burst
/// of large deliveries is claimed a bounded batch at a time, in order, and none is lost.
#[sqlx::test(migrations = "../../migrations")]
async fn large_bodies_are_claimed_a_bounded_batch_at_a_time(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let body = bytes::Bytes::from(vec![b' '; 5 * 1024 * 1024]);
    let mut ids = Vec::new();
    for n in 0..5 {
        let delivery = relay_store::deliveries::NewDelivery {
            integration_id: cloud.id.clone(),
            request_id: Some(format!("large-{n}")),
            event_key: "repo:push".into(),
            headers: serde_json::json!({}),
            body: body.clone(),
        };
        match relay_store::deliveries::insert(&pool, &delivery)
            .await
            .unwrap()
        {
            relay_store::deliveries::InsertOutcome::Stored(id) => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    let claim = relay_store::queue::claim_batch(&pool, 1000, &[], None)
        .await
        .unwrap()
        .unwrap();
    let claimed: Vec<i64> = claim.deliveries.iter().map(|d| d.id).collect();
    assert_eq!(
        claimed,
        ids[..4],
        "0, 5, 10 and 15 MB before each: the fifth waits"
    );
    claim.release().await.unwrap();
    drain(&processor(&pool)).await;
    let batches: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT min(id), count(*) FROM deliveries WHERE status <> 'pending' GROUP BY processed_at ORDER BY min(id)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(batches, [(ids[0], 4), (ids[4], 1)]);
}
