//! Group commit with two writers: while one statement is in flight, the other writer gathers
//! `overlap_rows` deliveries before starting its own, or goes with what it has as soon as
//! the statement in flight ends. A table lock held by the test keeps a statement in flight
//! for as long as the test needs, and `pg_stat_activity` shows how many are waiting on it.

use std::sync::Arc;
use std::time::Duration;

use relay::http::ingest::{GroupCommit, Ingestor};
use relay::metrics::Metrics;
use relay_core::IntegrationType;
use relay_store::deliveries::{InsertError, InsertOutcome};
use sqlx::{Connection, PgPool};
use tokio::task::JoinHandle;

use crate::support::*;

fn two_writers(pool: &PgPool, metrics: &Arc<Metrics>, overlap_rows: usize) -> Ingestor {
    Ingestor::start(
        pool.clone(),
        metrics.clone(),
        GroupCommit {
            writers: 2,
            max_batch: 16,
            overlap_rows,
            batch_timeout: Duration::from_secs(20),
        },
    )
}

fn send(
    ingestor: &Ingestor,
    integration_id: &str,
    request_id: &str,
) -> JoinHandle<Result<InsertOutcome, InsertError>> {
    let (ingestor, delivery) = (ingestor.clone(), push_delivery(integration_id, request_id));
    tokio::spawn(async move { ingestor.store(delivery).await })
}

/// A connection holding `deliveries` in SHARE mode: every INSERT waits for it.
async fn lock_deliveries(pool: &PgPool) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("LOCK TABLE deliveries IN SHARE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn statements_waiting(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_for_statements_waiting(pool: &PgPool, want: i64) {
    for _ in 0..200 {
        if statements_waiting(pool).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} statements waiting on the lock, not {want}",
        statements_waiting(pool).await
    );
}

/// Releases the lock, checks every delivery sent was stored, and returns the group-commit
/// statements that stored them and their rows.
async fn release_and_count_statements(
    blocker: sqlx::PgConnection,
    sent: Vec<JoinHandle<Result<InsertOutcome, InsertError>>>,
    metrics: &Metrics,
) -> (f64, f64) {
    blocker.close().await.unwrap();
    for handle in sent {
        let outcome = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("answered once the lock is released")
            .unwrap();
        assert!(
            matches!(outcome, Ok(InsertOutcome::Stored(_))),
            "{outcome:?}"
        );
    }
    let text = metrics.render();
    (
        metric_value(&text, "relay_ingest_batch_rows_count"),
        metric_value(&text, "relay_ingest_batch_rows_sum"),
    )
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_second_statement_starts_once_its_overlap_rows_are_queued(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let metrics = Arc::new(Metrics::new());
    let ingestor = two_writers(&pool, &metrics, 4);
    let blocker = lock_deliveries(&pool).await;

    // Nothing in flight: a lone delivery is a statement at once.
    let mut sent = vec![send(&ingestor, &integration.id, "first")];
    wait_for_statements_waiting(&pool, 1).await;
    // Three queued beside it are not enough for a second statement...
    for n in 0..3 {
        sent.push(send(&ingestor, &integration.id, &format!("gathered-{n}")));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(statements_waiting(&pool).await, 1);
    // ...the fourth is.
    sent.push(send(&ingestor, &integration.id, "fourth"));
    wait_for_statements_waiting(&pool, 2).await;

    let (statements, rows) = release_and_count_statements(blocker, sent, &metrics).await;
    assert_eq!((statements, rows), (2.0, 5.0));
    assert_eq!(delivery_count(&pool).await, 5);
}

#[sqlx::test(migrations = "../../migrations")]
async fn what_was_gathered_goes_when_the_statement_in_flight_ends(pool: PgPool) {
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    let metrics = Arc::new(Metrics::new());
    let ingestor = two_writers(&pool, &metrics, 8);
    let blocker = lock_deliveries(&pool).await;

    let mut sent = vec![send(&ingestor, &integration.id, "first")];
    wait_for_statements_waiting(&pool, 1).await;
    sent.push(send(&ingestor, &integration.id, "second"));
    sent.push(send(&ingestor, &integration.id, "third"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(statements_waiting(&pool).await, 1);

    // Two of eight gathered: they go as soon as the first statement commits.
    let (statements, rows) = release_and_count_statements(blocker, sent, &metrics).await;
    assert_eq!((statements, rows), (2.0, 3.0));
}
