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

pub(crate) fn processor(pool: &PgPool) -> Processor {
    Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig::default(),
    )
}

/// Processes until nothing is claimable; returns how many deliveries were finished.
pub(crate) async fn drain(processor: &Processor) -> usize {
    let mut n = 0;
    loop {
        match processor.process_next().await.unwrap() {
            0 => return n,
            done => n += done,
        }
    }
}

pub(crate) async fn post_fixture(
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

pub(crate) async fn environments(
    pool: &PgPool,
    integration: &str,
) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query_as("SELECT name, kind, status, parent FROM environments WHERE integration_id = $1 ORDER BY name")
        .bind(integration)
        .fetch_all(pool)
        .await
        .unwrap()
}

pub(crate) async fn status_of(pool: &PgPool, delivery: i64) -> (String, Option<String>, i32) {
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
async fn a_running_processor_is_woken_by_notify(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let config = ProcessorConfig {
        // Long enough that only LISTEN/NOTIFY can explain a prompt pickup.
        sweep_interval: Duration::from_secs(60),
        ..ProcessorConfig::default()
    };
    let (token, running) = start_processor(&pool, config).await;
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
    wait_for_no_pending(&pool, Duration::from_secs(10)).await;
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
