//! A delivery carrying a value PostgreSQL cannot store fails alone, at once and with its
//! reason; the deliveries before and after it are processed in order.

use std::sync::Arc;

use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use sqlx::PgPool;

use crate::support::*;

fn server_branch_create(branch: &str) -> Vec<u8> {
    let path = fixtures_dir().join("bitbucket-server/push_branch_create.json");
    let mut body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let change = &mut body["changes"][0];
    change["ref"]["id"] = format!("refs/heads/{branch}").into();
    change["ref"]["displayId"] = branch.into();
    change["refId"] = format!("refs/heads/{branch}").into();
    serde_json::to_vec(&body).unwrap()
}

async fn ingest(
    server: &TestServer,
    integration: &TestIntegration,
    kind: IntegrationType,
    event_key: &str,
    request_id: &str,
    body: &[u8],
) -> i64 {
    let response = post_delivery(
        &server.hook_url(&integration.id),
        kind,
        event_key,
        request_id,
        body,
        Some(sign(&integration.webhook_secret, body)),
    )
    .await;
    assert_eq!(response.status(), 202, "{request_id}");
    let answer: serde_json::Value = response.json().await.unwrap();
    answer["delivery_id"].as_i64().unwrap()
}

/// Processes until nothing is claimable (one pass is enough when all goes well: no retries).
async fn drain(pool: &PgPool) {
    let processor = Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig::default(),
    );
    while processor.process_next().await.unwrap() > 0 {}
}

async fn outcome(pool: &PgPool, delivery: i64) -> (String, Option<String>, i32) {
    sqlx::query_as("SELECT status, last_error, attempts FROM deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The branches the mirror jobs were queued for, in queue order.
async fn mirrored_branches(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload->>'branch' FROM jobs WHERE kind = 'mirror_branch' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn server_integration(pool: &PgPool) -> TestIntegration {
    let integration = add_integration(pool, IntegrationType::Server).await;
    sqlx::query("UPDATE integrations SET default_branch = 'master'")
        .execute(pool)
        .await
        .unwrap();
    integration
}

/// Ingests the named branch creations with no worker running, then processes them all.
async fn ingest_branches(
    pool: &PgPool,
    integration: &TestIntegration,
    branches: &[&str],
) -> Vec<i64> {
    let server = TestServer::start(pool.clone()).await;
    let mut ids = Vec::new();
    for (n, branch) in branches.iter().enumerate() {
        let body = server_branch_create(branch);
        let id = ingest(
            &server,
            integration,
            IntegrationType::Server,
            "repo:refs_changed",
            &format!("req-{n}"),
            &body,
        )
        .await;
        ids.push(id);
    }
    drain(pool).await;
    ids
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_nul_in_a_branch_name_fails_only_its_delivery(pool: PgPool) {
    let integration = server_integration(&pool).await;
    let ids = ingest_branches(&pool, &integration, &["ok-1", "ok-2", "bad\u{0}x", "ok-3"]).await;
    for id in [ids[0], ids[1], ids[3]] {
        let (status, error, attempts) = outcome(&pool, id).await;
        assert_eq!((status.as_str(), error, attempts), ("processed", None, 1));
    }
    let (status, error, attempts) = outcome(&pool, ids[2]).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    let error = error.unwrap();
    assert!(error.contains("NUL"), "{error}");
    assert_eq!(mirrored_branches(&pool).await, ["ok-1", "ok-2", "ok-3"]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_pull_request_id_beyond_bigint_fails_only_its_delivery(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let fixture = |name: &str| std::fs::read(fixtures_dir().join("bitbucket-cloud").join(name));
    let push = fixture("push_branch_create.json").unwrap();
    let pr = String::from_utf8(fixture("pr_created.json").unwrap()).unwrap();
    let mut huge: serde_json::Value = serde_json::from_str(&pr).unwrap();
    // 2^63 as a JSON number: one more than PostgreSQL's bigint holds.
    huge["pullrequest"]["id"] = serde_json::Value::from(1u64 << 63);
    let huge = serde_json::to_vec(&huge).unwrap();
    let first = ingest(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "repo:push",
        "c1",
        &push,
    )
    .await;
    let bad = ingest(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pullrequest:created",
        "c2",
        &huge,
    )
    .await;
    let last = ingest(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pullrequest:created",
        "c3",
        pr.as_bytes(),
    )
    .await;
    drain(&pool).await;
    assert_eq!(outcome(&pool, first).await.0, "processed");
    assert_eq!(outcome(&pool, last).await.0, "processed");
    let (status, error, attempts) = outcome(&pool, bad).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap().contains("out of range"));
}

/// A trigger standing in for any data exception: the database refuses to store an environment
/// for `branch`.
async fn refuse_branch(pool: &PgPool, branch: &str) {
    let function = format!(
        r#"CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.branch = '{branch}' THEN
               RAISE EXCEPTION 'value refused' USING ERRCODE = '22023';
             END IF;
             RETURN NEW;
           END $$"#
    );
    sqlx::raw_sql(&function).execute(pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON environments
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// What the parser cannot foresee: the database itself refusing one delivery's write (here
/// [`refuse_branch`]). The batch is written again one delivery at a
/// time and only the refused one fails.
#[sqlx::test(migrations = "../../migrations")]
async fn a_write_the_database_refuses_fails_only_its_delivery(pool: PgPool) {
    refuse_branch(&pool, "poison").await;
    let integration = server_integration(&pool).await;
    let ids = ingest_branches(&pool, &integration, &["ok-a", "poison", "ok-b"]).await;
    assert_eq!(outcome(&pool, ids[0]).await.0, "processed");
    assert_eq!(outcome(&pool, ids[2]).await.0, "processed");
    let (status, error, attempts) = outcome(&pool, ids[1]).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap().contains("value refused"));
    assert_eq!(mirrored_branches(&pool).await, ["ok-a", "ok-b"]);
    let names: Vec<String> = sqlx::query_scalar("SELECT branch FROM environments ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(names, ["ok-a", "ok-b"]);
}

/// A backlog is planned and written a chunk at a time (250 deliveries), the next chunk planned
/// while the previous one is written. A refused delivery in the middle of a big batch fails
/// alone, and the chunk planned meanwhile against what the refused one would have left is
/// planned again: the same branch refused again later fails again, rather than being taken
/// for an environment that exists.
#[sqlx::test(migrations = "../../migrations")]
async fn a_refused_delivery_in_a_big_batch_fails_alone_and_the_rest_keep_their_order(pool: PgPool) {
    refuse_branch(&pool, "poison").await;
    let integration = server_integration(&pool).await;
    let mut branches: Vec<String> = (0..560).map(|n| format!("ok-{n:03}")).collect();
    branches[300] = "poison".into();
    branches[520] = "poison".into();
    let names: Vec<&str> = branches.iter().map(String::as_str).collect();
    let ids = ingest_branches(&pool, &integration, &names).await;
    for (n, id) in ids.iter().enumerate() {
        let (status, error, attempts) = outcome(&pool, *id).await;
        if n == 300 || n == 520 {
            assert_eq!((status.as_str(), attempts), ("failed", 1), "delivery {n}");
            assert!(error.unwrap().contains("value refused"), "delivery {n}");
        } else {
            assert_eq!(
                (status.as_str(), error, attempts),
                ("processed", None, 1),
                "delivery {n}"
            );
        }
    }
    let expected: Vec<&str> = names.iter().copied().filter(|b| *b != "poison").collect();
    assert_eq!(mirrored_branches(&pool).await, expected);
    let environments: Vec<String> =
        sqlx::query_scalar("SELECT branch FROM environments ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(environments, expected);
}
