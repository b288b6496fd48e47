//! Under load an integration rests between batches (`RELAY_BATCH_INTERVAL_MS`), so that its
//! deliveries gather into bigger batches; a trickle and other integrations never wait for it.
//! A batch's deliveries share their transaction's `now()` (`updated_at`), taken when its claim
//! began, so the gaps between those say when each batch was claimed.

use std::time::Duration;

use relay::worker::rest::SHOWS_LOAD;
use relay::worker::ProcessorConfig;
use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::support::*;

// Long, so that a slow machine still stores the later deliveries within the first rest.
const INTERVAL: Duration = Duration::from_secs(2);

fn config() -> ProcessorConfig {
    ProcessorConfig {
        workers: 2,
        batch_interval: INTERVAL,
        // Only the notifications and the rests' ends can explain a prompt finish.
        sweep_interval: Duration::from_secs(60),
        ..ProcessorConfig::default()
    }
}

async fn store(pool: &PgPool, integration_id: &str, prefix: &str, count: usize) {
    let ids: Vec<String> = (0..count).map(|n| format!("{prefix}-{n}")).collect();
    let rows: Vec<(&str, &str)> = ids.iter().map(|r| (integration_id, r.as_str())).collect();
    insert_pushes(pool, &rows).await;
}

/// Each batch of `integration_id` (its claim's time), oldest first, with its deliveries.
async fn batches(pool: &PgPool, integration_id: &str) -> Vec<(chrono::DateTime<chrono::Utc>, i64)> {
    sqlx::query_as(
        "SELECT updated_at, count(*) FROM deliveries
         WHERE integration_id = $1 AND status <> 'pending'
         GROUP BY updated_at ORDER BY updated_at",
    )
    .bind(integration_id)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn finish(pool: &PgPool) {
    assert_eq!(wait_for_no_pending(pool, Duration::from_secs(10)).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_busy_integration_rests_while_another_is_processed_at_once(pool: PgPool) {
    let busy = add_integration(&pool, IntegrationType::Cloud).await;
    let other = add_integration(&pool, IntegrationType::Cloud).await;
    let (token, running) = start_processor(&pool, config()).await;

    store(&pool, &busy.id, "first", SHOWS_LOAD + 4).await;
    finish(&pool).await;
    // While `busy` rests, more of its deliveries arrive in three statements, and one of
    // `other`'s.
    for round in 0..3 {
        store(&pool, &busy.id, &format!("later-{round}"), 5).await;
    }
    store(&pool, &other.id, "other", 1).await;
    finish(&pool).await;
    token.cancel();
    running.await.unwrap();

    let busy_batches = batches(&pool, &busy.id).await;
    let counts: Vec<i64> = busy_batches.iter().map(|b| b.1).collect();
    assert_eq!(
        counts,
        vec![20, 15],
        "what arrived during the rest is one batch"
    );
    let rested = busy_batches[1].0 - busy_batches[0].0;
    assert!(
        rested >= chrono::Duration::from_std(INTERVAL).unwrap(),
        "claimed again {rested} after the first claim"
    );
    let other_batch = batches(&pool, &other.id).await[0].0;
    assert!(
        other_batch < busy_batches[1].0,
        "the other integration did not wait for the busy one's rest"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_trickle_is_processed_at_once(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let (token, running) = start_processor(&pool, config()).await;

    for n in 0..3 {
        store(
            &pool,
            &integration.id,
            &format!("trickle-{n}"),
            SHOWS_LOAD - 1,
        )
        .await;
        finish(&pool).await;
    }
    token.cancel();
    running.await.unwrap();

    let claims: Vec<_> = batches(&pool, &integration.id).await;
    assert_eq!(claims.len(), 3);
    let spread = claims[2].0 - claims[0].0;
    assert!(
        spread < chrono::Duration::from_std(INTERVAL).unwrap(),
        "batches under {SHOWS_LOAD} never rest, yet three took {spread}"
    );
}

/// A batch cut short by the bound on its bodies' bytes leaves more waiting: a backlog, which
/// is drained without a rest however few deliveries the batch held.
#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_cut_short_by_its_bodies_bytes_does_not_rest(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let body = format!(r#"{{"padding":"{}"}}"#, "x".repeat(1024 * 1024));
    let rows = relay_store::queue::MAX_BATCH_BODY_BYTES / body.len() + 4;
    assert!(rows > SHOWS_LOAD);
    sqlx::query(
        "INSERT INTO deliveries (integration_id, request_id, event_key, body)
         SELECT $1, 'big-' || n, 'repo:push', convert_to($2, 'UTF8')
         FROM generate_series(1, $3) AS n",
    )
    .bind(&integration.id)
    .bind(&body)
    .bind(i32::try_from(rows).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let (token, running) = start_processor(&pool, config()).await;
    finish(&pool).await;
    token.cancel();
    running.await.unwrap();

    let claims = batches(&pool, &integration.id).await;
    assert_eq!(claims.len(), 2, "cut by the bytes bound: {claims:?}");
    let gap = claims[1].0 - claims[0].0;
    assert!(
        gap < chrono::Duration::from_std(INTERVAL).unwrap(),
        "the rest of the backlog waited {gap}"
    );
}
