//! The deliveries' notification names its integrations, and a worker that holds one is not
//! joined by a woken sibling: nothing may be lost by that (the holder claims again).

use std::time::Duration;

use relay::worker::ProcessorConfig;
use relay_core::IntegrationType;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::support::*;

const CHANNEL: &str = "relay_deliveries";

async fn next_payload(listener: &mut PgListener) -> String {
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    notification.payload().to_owned()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_notification_names_the_integrations_its_statement_stored_for(pool: PgPool) {
    let a = add_integration(&pool, IntegrationType::Cloud).await;
    let b = add_integration(&pool, IntegrationType::Server).await;
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();

    insert_pushes(&pool, &[(&a.id, "a1"), (&b.id, "b1"), (&a.id, "a2")]).await;
    let mut expected = [a.id.as_str(), b.id.as_str()];
    expected.sort();
    assert_eq!(next_payload(&mut listener).await, expected.join(" "));

    // Only request ids seen before: nothing stored, no notification. The next one received
    // is the following statement's.
    insert_pushes(&pool, &[(&a.id, "a1"), (&b.id, "b1")]).await;
    insert_pushes(&pool, &[(&b.id, "b2")]).await;
    assert_eq!(next_payload(&mut listener).await, b.id);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_statement_for_more_integrations_than_a_payload_holds_names_none(pool: PgPool) {
    // 70 integration ids of 64 characters: more than the 4,000 bytes a payload names.
    let template = add_integration(&pool, IntegrationType::Cloud).await;
    let mut ids = Vec::new();
    for n in 0..70 {
        let id = format!("{n:0>64}");
        sqlx::query(
            "INSERT INTO integrations
             SELECT (jsonb_populate_record(i, jsonb_build_object('id', $2::text))).*
             FROM integrations i WHERE i.id = $1",
        )
        .bind(&template.id)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    let rows: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "r")).collect();
    insert_pushes(&pool, &rows).await;
    assert_eq!(next_payload(&mut listener).await, "");
}

/// A worker busy with one integration for many batches while more of its deliveries arrive,
/// one statement at a time: the notifications of those that arrive while it holds the
/// integration wake nobody, and it still processes every one, once and in order, long before
/// the sweep would have. (That the skip happens is `wake::tests` and, measured, relay-bench's
/// empty claims: this test is about losing nothing by it.)
#[sqlx::test(migrations = "../../migrations")]
async fn a_worker_holding_an_integration_claims_what_arrived_while_it_held_it(pool: PgPool) {
    let a = add_integration(&pool, IntegrationType::Cloud).await;
    let config = ProcessorConfig {
        workers: 2,
        batch_size: 5,
        // Only the notifications (and the holder's next claim) can explain a prompt finish.
        sweep_interval: Duration::from_secs(60),
        ..ProcessorConfig::default()
    };
    let (token, running) = start_processor(&pool, config).await;

    let first: Vec<String> = (0..150).map(|n| format!("first-{n}")).collect();
    let rows: Vec<(&str, &str)> = first.iter().map(|r| (a.id.as_str(), r.as_str())).collect();
    insert_pushes(&pool, &rows).await;
    for n in 0..30 {
        insert_pushes(&pool, &[(&a.id, &format!("later-{n}"))]).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let pending = wait_for_no_pending(&pool, Duration::from_secs(10)).await;
    token.cancel();
    running.await.unwrap();
    assert_eq!(pending, 0, "every delivery processed without the sweep");
    let unprocessed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE status NOT IN ('processed', 'ignored') OR attempts <> 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unprocessed, 0, "each processed exactly once");
    let order: Vec<i64> = sqlx::query_scalar("SELECT id FROM deliveries ORDER BY processed_at, id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "processed in arrival order");
    assert_eq!(order.len(), 180);
}
