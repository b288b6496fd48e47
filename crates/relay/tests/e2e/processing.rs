//! From a signed HTTP POST to environment rows and jobs, through the real processor.

use std::sync::Arc;
use std::time::Duration;

use relay::metrics::Metrics;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::IntegrationType;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::cli::Relay;
use crate::support::*;

fn processor(pool: &PgPool) -> Processor {
    Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig::default(),
    )
}

/// Processes until nothing is claimable; returns how many deliveries were finished.
async fn drain(processor: &Processor) -> usize {
    let mut n = 0;
    loop {
        match processor.process_next().await.unwrap() {
            0 => return n,
            done => n += done,
        }
    }
}

async fn post_fixture(
    server: &TestServer,
    integration: &TestIntegration,
    kind: IntegrationType,
    file: &str,
    event_key: &str,
    request_id: &str,
) -> i64 {
    let dir = match kind {
        IntegrationType::Cloud => "bitbucket-cloud",
        IntegrationType::Server => "bitbucket-server",
    };
    let body = std::fs::read(fixtures_dir().join(dir).join(file)).unwrap();
    let response = post_delivery(
        &server.hook_url(&integration.id),
        kind,
        event_key,
        request_id,
        &body,
        Some(sign(&integration.webhook_secret, &body)),
    )
    .await;
    assert_eq!(response.status(), 202);
    let answer: serde_json::Value = response.json().await.unwrap();
    answer["delivery_id"].as_i64().unwrap()
}

async fn environments(
    pool: &PgPool,
    integration: &str,
) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query_as("SELECT name, kind, status, parent FROM environments WHERE integration_id = $1 ORDER BY name")
        .bind(integration)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn status_of(pool: &PgPool, delivery: i64) -> (String, Option<String>, i32) {
    sqlx::query_as("SELECT status, last_error, attempts FROM deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn webhooks_become_environments_and_jobs(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    sqlx::query("UPDATE integrations SET default_branch = 'master'")
        .execute(&pool)
        .await
        .unwrap();
    let processor = processor(&pool);

    let created = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "push_branch_create.json",
        "repo:push",
        "c1",
    )
    .await;
    let opened = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_created.json",
        "pullrequest:created",
        "c2",
    )
    .await;
    let comment = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_comment_created.json",
        "pullrequest:comment_created",
        "c3",
    )
    .await;
    assert_eq!(drain(&processor).await, 3);

    assert_eq!(status_of(&pool, created).await.0, "processed");
    assert_eq!(status_of(&pool, opened).await.0, "processed");
    assert_eq!(status_of(&pool, comment).await.0, "ignored");
    let envs = environments(&pool, &cloud.id).await;
    let pr = envs
        .iter()
        .find(|e| e.0 == "pr-1")
        .unwrap_or_else(|| panic!("{envs:?}"));
    assert_eq!((pr.1.as_str(), pr.2.as_str()), ("pull_request", "active"));
    let branch = envs
        .iter()
        .find(|e| e.1 == "branch")
        .unwrap_or_else(|| panic!("{envs:?}"));
    assert_eq!(
        branch.2, "inactive",
        "new branch environments start inactive"
    );
    assert_eq!(
        branch.3.as_deref(),
        Some("master"),
        "parent is the default branch"
    );

    let jobs: Vec<(String, i64)> = sqlx::query_as("SELECT kind, delivery_id FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        jobs.iter()
            .any(|(k, d)| k == "mirror_branch" && *d == created),
        "{jobs:?}"
    );
    assert!(
        jobs.iter()
            .any(|(k, d)| k == "build_pull_request" && *d == opened),
        "{jobs:?}"
    );

    // Merging the pull request deletes its environment.
    let merged = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_fulfilled.json",
        "pullrequest:fulfilled",
        "c4",
    )
    .await;
    drain(&processor).await;
    assert_eq!(status_of(&pool, merged).await.0, "processed");
    let envs = environments(&pool, &cloud.id).await;
    let pr = envs.iter().find(|e| e.0 == "pr-1").unwrap();
    assert_eq!(pr.2, "deleting");

    // A late "created" after the merge does not bring it back.
    post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_created.json",
        "pullrequest:created",
        "c5",
    )
    .await;
    drain(&processor).await;
    let envs_after = environments(&pool, &cloud.id).await;
    assert_eq!(envs_after, envs);

    // Replaying any delivery changes nothing.
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    for id in [created, opened, merged] {
        relay_store::queue::redeliver(&pool, id).await.unwrap();
    }
    assert_eq!(drain(&processor).await, 3);
    assert_eq!(environments(&pool, &cloud.id).await, envs);
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs_before, jobs_after, "a replay queues no job");
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_fixtures_are_processed(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let bbs = add_integration(&pool, IntegrationType::Server).await;
    let processor = processor(&pool);
    let opened = post_fixture(
        &server,
        &bbs,
        IntegrationType::Server,
        "pr_open.json",
        "pr:opened",
        "s1",
    )
    .await;
    let pushed = post_fixture(
        &server,
        &bbs,
        IntegrationType::Server,
        "push_branch_create.json",
        "repo:refs_changed",
        "s2",
    )
    .await;
    drain(&processor).await;
    assert_eq!(status_of(&pool, opened).await.0, "processed");
    assert_eq!(status_of(&pool, pushed).await.0, "processed");
    let envs = environments(&pool, &bbs.id).await;
    assert!(
        envs.iter()
            .any(|e| e.1 == "pull_request" && e.2 == "active"),
        "{envs:?}"
    );
}

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
async fn a_running_processor_is_woken_by_notify(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let config = ProcessorConfig {
        // Long enough that only LISTEN/NOTIFY can explain a prompt pickup.
        sweep_interval: Duration::from_secs(60),
        ..ProcessorConfig::default()
    };
    let processor = Processor::new(pool.clone(), Arc::new(Metrics::new()), config);
    let token = CancellationToken::new();
    let running = tokio::spawn(processor.run(token.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "push_branch_create.json",
        "repo:push",
        "n1",
    )
    .await;
    let mut status = String::new();
    for _ in 0..100 {
        status = status_of(&pool, id).await.0;
        if status != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "processed");
    token.cancel();
    running.await.unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn two_processes_never_process_a_delivery_twice_and_keep_order(pool: PgPool) {
    let integrations = [
        add_integration(&pool, IntegrationType::Cloud).await,
        add_integration(&pool, IntegrationType::Cloud).await,
        add_integration(&pool, IntegrationType::Server).await,
    ];
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    for n in 0..60 {
        let integration = &integrations[n % 3];
        sqlx::query("INSERT INTO deliveries (integration_id, request_id, event_key, body) VALUES ($1, $2, 'repo:push', $3)")
            .bind(&integration.id)
            .bind(format!("r{n}"))
            .bind(&body)
            .execute(&pool)
            .await
            .unwrap();
    }
    // Two "relay processes": separate pools on the same database, two workers each.
    let url = database_url(&pool);
    let mut handles = Vec::new();
    let token = CancellationToken::new();
    for _ in 0..2 {
        let other = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        let processor = Processor::new(
            other,
            Arc::new(Metrics::new()),
            ProcessorConfig {
                workers: 2,
                sweep_interval: Duration::from_millis(50),
                ..ProcessorConfig::default()
            },
        );
        handles.push(tokio::spawn(processor.run(token.clone())));
    }
    for _ in 0..200 {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    for handle in handles {
        handle.await.unwrap();
    }
    let rows: Vec<(i64, String, String, i32)> =
        sqlx::query_as("SELECT id, integration_id, status, attempts FROM deliveries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        rows.iter().all(|r| r.2 != "pending" && r.3 == 1),
        "each delivery processed exactly once: {rows:?}"
    );
    // Per integration, processing order follows arrival order.
    let order: Vec<(String, i64)> =
        sqlx::query_as("SELECT integration_id, id FROM deliveries ORDER BY processed_at, id")
            .fetch_all(&pool)
            .await
            .unwrap();
    for integration in &integrations {
        let ids: Vec<i64> = order
            .iter()
            .filter(|(i, _)| *i == integration.id)
            .map(|(_, id)| *id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "order kept for {}", integration.id);
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn environment_list_and_delivery_show_and_redeliver_cli(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let opened = post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_created.json",
        "pullrequest:created",
        "x1",
    )
    .await;
    drain(&processor(&pool)).await;
    let relay = Relay::new(&pool);
    let envs = relay.json(&["environment:list", "--integration", &cloud.id]);
    assert_eq!(envs[0]["name"], "pr-1");
    assert_eq!(envs[0]["status"], "active");
    let table = relay.ok(&["environment:list"]);
    assert!(table.contains("pr-1") && table.contains("#1"), "{table}");

    let shown = relay.json(&["delivery:show", &opened.to_string()]);
    assert_eq!(shown["status"], "processed");
    assert!(!shown["decisions"]["changes"].as_array().unwrap().is_empty());
    assert!(shown["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["kind"] == "build_pull_request"));
    let table = relay.ok(&["delivery:show", &opened.to_string()]);
    assert!(
        table.contains("Decisions:") && table.contains("environment pr-1: create"),
        "{table}"
    );

    relay.ok(&["delivery:redeliver", &opened.to_string()]);
    assert_eq!(status_of(&pool, opened).await.0, "pending");
    let missing = relay.run(&["delivery:redeliver", "999999"]);
    assert_eq!(missing.status.code(), Some(3));
    let listed = relay.json(&["delivery:list", "--status", "pending"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
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
        delays: vec![Duration::from_millis(100)],
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
    tokio::time::sleep(Duration::from_millis(150)).await;
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
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(processor.process_next().await.unwrap() > 0);
    }
    blocker.rollback().await.unwrap();
    let (status, _, attempts) = status_of(&pool, doomed).await;
    assert_eq!((status.as_str(), attempts), ("failed", 3));
    while processor.process_next().await.unwrap() > 0 {}
    assert_eq!(status_of(&pool, next).await.0, "processed");
}

#[sqlx::test(migrations = "../../migrations")]
async fn processing_metrics_are_exported(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    post_fixture(
        &server,
        &cloud,
        IntegrationType::Cloud,
        "pr_created.json",
        "pullrequest:created",
        "m1",
    )
    .await;
    let processor = Processor::new(
        pool.clone(),
        server.state.metrics.clone(),
        ProcessorConfig::default(),
    );
    drain(&processor).await;
    relay::worker::sampler::sample(&pool, &server.state.metrics)
        .await
        .unwrap();
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "relay_deliveries_processed_total{outcome=\"processed\"} 1",
        "relay_delivery_processing_lag_seconds_count 1",
        "relay_delivery_queue_depth 0",
        "relay_environments{status=\"active\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in\n{metrics}"
        );
    }
}
