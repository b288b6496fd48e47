//! The activity log: deliveries, reconciles, jobs and circuit changes of one integration,
//! listed and filtered by the CLI and the API, each with its timestamped lines; bounded by the
//! retention.

use std::sync::Arc;
use std::time::Duration;

use relay::metrics::Metrics;
use relay::worker::circuit::CircuitConfig;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::{DeployEvent, IntegrationType, JobSpec};
use serde_json::Value;
use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::*;

async fn deliver(
    server: &TestServer,
    integration: &TestIntegration,
    key: &str,
    body: &[u8],
    id: &str,
) {
    let response = post_delivery(
        &server.hook_url(&integration.id),
        IntegrationType::Cloud,
        key,
        id,
        body,
        Some(sign(&integration.webhook_secret, body)),
    )
    .await;
    assert_eq!(response.status(), 202);
}

/// A processed and a failed delivery, a deploy-hook job and a reconcile that fail against
/// nothing and open their circuits (one failure is enough here).
async fn some_history(pool: &PgPool) -> TestIntegration {
    let integration = add_integration(pool, IntegrationType::Cloud).await;
    sqlx::query("UPDATE integrations SET deploy_hook_url = 'http://127.0.0.1:9/hook'")
        .execute(pool)
        .await
        .unwrap();
    let server = TestServer::start(pool.clone()).await;
    let push =
        std::fs::read(fixtures_dir().join("bitbucket-cloud/push_branch_create.json")).unwrap();
    deliver(&server, &integration, "repo:push", &push, "ok").await;
    deliver(&server, &integration, "repo:push", br#"{"push": 1}"#, "bad").await;
    let processor = Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig::default(),
    );
    while processor.process_next().await.unwrap() > 0 {}
    // Only the jobs enqueued here: the push's own jobs would need git.
    sqlx::query("DELETE FROM jobs").execute(pool).await.unwrap();
    let notify = JobSpec::NotifyDeploySide {
        environment: "pr-1".into(),
        event: DeployEvent::Created,
        parent: None,
        clone_parent_data: false,
    };
    let reconcile = JobSpec::Reconcile {
        reason: "test".into(),
    };
    for job in [notify, reconcile] {
        relay_store::jobs::enqueue(pool, &integration.id, None, &job)
            .await
            .unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(data.path().to_path_buf(), nowhere());
    config.retry = RetrySchedule {
        delays: vec![Duration::from_secs(600)],
        max_attempts: 3,
    };
    config.circuit = CircuitConfig {
        failures: 1,
        ..CircuitConfig::default()
    };
    let runner = Runner::new(pool.clone(), key(), Arc::new(Metrics::new()), config);
    while runner.run_next().await.unwrap() {}
    integration
}

fn types(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(list: &'a Value, kind: &str, result: Option<&str>) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == kind && result.is_none_or(|r| a["result"] == r))
        .unwrap_or_else(|| panic!("no {kind} {result:?} in {list}"))
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_activity_log_covers_deliveries_jobs_reconciles_and_circuits(pool: PgPool) {
    let integration = some_history(&pool).await;
    let relay = Relay::new(&pool);
    let id = integration.id.as_str();
    let all = relay.json(&["integration:activity:list", id]);
    let mut kinds = types(&all);
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["circuit", "delivery", "job", "reconcile"], "{all}");
    for activity in all.as_array().unwrap() {
        for field in ["id", "type", "state", "created_at", "description"] {
            assert!(activity[field].is_string(), "{field} in {activity}");
        }
        assert!(activity.get("result").is_some() && activity.get("completed_at").is_some());
    }
    let processed = find(&all, "delivery", Some("success"));
    assert_eq!(processed["state"], "complete");
    assert!(processed["description"]
        .as_str()
        .unwrap()
        .contains("repo:push delivery (request ok) processed"));
    let failed = find(&all, "delivery", Some("failure"));
    let job = find(&all, "job", None);
    assert_eq!(job["state"], "in_progress", "waiting to retry: {job}");
    let opened = find(&all, "circuit", Some("failure"));
    assert!(
        opened["description"]
            .as_str()
            .unwrap()
            .contains("circuit opened"),
        "{opened}"
    );

    // Filters.
    assert_eq!(
        types(&relay.json(&["integration:activity:list", id, "--type", "delivery"])),
        ["delivery", "delivery"]
    );
    let failures = relay.json(&["integration:activity:list", id, "--result", "failure"]);
    assert!(failures
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["result"] == "failure"));
    let pending = relay.json(&["integration:activity:list", id, "--state", "in_progress"]);
    assert!(pending
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["state"] == "in_progress"));
    assert_eq!(
        relay
            .json(&["integration:activity:list", id, "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Logs.
    let lines = |activity: &Value| -> Vec<String> {
        let log = relay.json(&[
            "integration:activity:log",
            id,
            activity["id"].as_str().unwrap(),
        ]);
        assert_eq!(log["activity"], *activity);
        log["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                assert!(l["at"].is_string());
                l["line"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let processed_lines = lines(processed);
    assert!(
        processed_lines[0].starts_with("received repo:push"),
        "{processed_lines:?}"
    );
    assert!(
        processed_lines.iter().any(|l| l.starts_with("decision:")),
        "{processed_lines:?}"
    );
    let failed_lines = lines(failed);
    assert!(
        failed_lines.iter().any(|l| l.contains("failed")),
        "{failed_lines:?}"
    );
    let job_lines = lines(job);
    assert!(
        job_lines.iter().any(|l| l.starts_with("attempt 1 failed")),
        "{job_lines:?}"
    );
    assert!(lines(opened).iter().any(|l| l == "closed -> open"));
    let text = relay.ok(&["integration:activity:log", id, job["id"].as_str().unwrap()]);
    assert!(text.contains("attempt 1 failed"), "{text}");

    // The same through the API.
    let server = TestServer::start(pool.clone()).await;
    let get = |path: String| {
        let url = server.url(&path);
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, circuits) =
        get(format!("/api/v1/integrations/{id}/activities?type=circuit")).await;
    assert_eq!(status, 200);
    assert!(types(&circuits).iter().all(|t| t == "circuit") && !types(&circuits).is_empty());
    let (status, log) = get(format!(
        "/api/v1/integrations/{id}/activities/{}",
        job["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(log["activity"]["id"], job["id"]);
    let (status, _) = get(format!("/api/v1/integrations/{id}/activities/job-999999")).await;
    assert_eq!(status, 404);
    let (status, body) = get(format!("/api/v1/integrations/{id}/activities?state=done")).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = get("/api/v1/integrations/nosuchthing/activities".into()).await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_log_is_bounded_by_its_retention(pool: PgPool) {
    let integration = some_history(&pool).await;
    let id = integration.id.as_str();
    let relay = Relay::new(&pool);
    let before = relay
        .json(&["integration:activity:list", id])
        .as_array()
        .unwrap()
        .len();
    sqlx::query("UPDATE deliveries SET received_at = now() - interval '40 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE activities SET created_at = now() - interval '40 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE activity_lines SET at = now() - interval '40 days'")
        .execute(&pool)
        .await
        .unwrap();
    let after = relay.json(&["integration:activity:list", id]);
    assert!(
        types(&after).iter().all(|t| t == "job" || t == "reconcile"),
        "older than 30 days are not listed: {after}"
    );
    assert!(after.as_array().unwrap().len() < before);
    let shorter = relay
        .clone()
        .with_env("RELAY_ACTIVITY_RETENTION", "1h")
        .json(&["integration:activity:list", id, "--type", "delivery"]);
    assert_eq!(shorter, serde_json::json!([]));
    let cutoff = chrono::Utc::now() - chrono::Duration::days(30);
    let removed = relay_store::activities::prune(&pool, cutoff).await.unwrap();
    assert!(removed >= 2, "{removed}");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM activities) + (SELECT count(*) FROM activity_lines)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}
