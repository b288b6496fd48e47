//! The deploy side: signed Standard Webhooks events to a loopback receiver, in order per
//! environment; a failing receiver retried into the dead letter; a dead relay's job taken over
//! when its lease runs out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use relay::metrics::Metrics;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay::worker::{Processor, ProcessorConfig};
use relay_core::{DeployEvent, IntegrationType, JobKind, JobSpec};
use relay_store::JobState;
use sha2::Sha256;
use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::*;

#[derive(Clone, Default)]
struct Receiver {
    secret: Arc<Mutex<String>>,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
    failures_left: Arc<Mutex<u32>>,
    attempts: Arc<Mutex<u32>>,
}

/// Verifies a Standard Webhooks signature the way any receiver library would.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(key) =
        base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_"))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    fresh && signature.split(' ').any(|s| s == expected)
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *receiver.attempts.lock().unwrap() += 1;
    {
        let mut left = receiver.failures_left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    if !verify(&receiver.secret.lock().unwrap(), &headers, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    receiver
        .events
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

async fn start_receiver(receiver: Receiver) -> String {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

fn runner(pool: &PgPool, data: &std::path::Path, max_attempts: i32) -> Runner {
    let mut config = RunnerConfig::new(data.to_path_buf(), nowhere());
    config.retry = RetrySchedule {
        delays: vec![Duration::from_millis(30)],
        max_attempts,
    };
    config.lease = Duration::from_millis(600);
    Runner::new(pool.clone(), key(), Arc::new(Metrics::new()), config)
}

async fn setup(pool: &PgPool, receiver: &Receiver) -> TestIntegration {
    let url = start_receiver(receiver.clone()).await;
    let integration = add_integration(pool, IntegrationType::Cloud).await;
    sqlx::query("UPDATE integrations SET deploy_hook_url = $1, environment_url = 'https://{environment}.example.com', updated_at = now()")
        .bind(&url)
        .execute(pool)
        .await
        .unwrap();
    let record = relay_store::integrations::get(pool, &integration.id)
        .await
        .unwrap();
    let secret = key()
        .decrypt(
            &record.id,
            relay::secrets::SecretField::DeployHookSecret,
            &record.deploy_hook_secret_ciphertext,
        )
        .unwrap();
    *receiver.secret.lock().unwrap() = secrecy::ExposeSecret::expose_secret(&secret).to_owned();
    integration
}

fn notify(environment: &str, event: DeployEvent) -> JobSpec {
    JobSpec::NotifyDeploySide {
        environment: environment.into(),
        event,
        parent: Some("main".into()),
        clone_parent_data: true,
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn events_arrive_signed_and_in_order(pool: PgPool) {
    let receiver = Receiver::default();
    let integration = setup(&pool, &receiver).await;
    // A real pull request's events first, through the processor.
    let server = TestServer::start(pool.clone()).await;
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/pr_created.json")).unwrap();
    post_delivery(
        &server.hook_url(&integration.id),
        IntegrationType::Cloud,
        "pullrequest:created",
        "d1",
        &body,
        Some(sign(&integration.webhook_secret, &body)),
    )
    .await;
    Processor::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        ProcessorConfig::default(),
    )
    .process_next()
    .await
    .unwrap();
    // (a new pull request is created, then activated) Then a burst of events for it.
    for event in [
        DeployEvent::Activated,
        DeployEvent::Deactivated,
        DeployEvent::Activated,
        DeployEvent::Deleted,
    ] {
        relay_store::jobs::enqueue(&pool, &integration.id, None, &notify("pr-1", event))
            .await
            .unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let runner = runner(&pool, data.path(), 3);
    while runner.run_next().await.unwrap() {}

    let events = receiver.events.lock().unwrap().clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "environment.created",
            "environment.activated",
            "environment.activated",
            "environment.deactivated",
            "environment.activated",
            "environment.deleted"
        ],
        "{events:?}"
    );
    let created = &events[0]["data"];
    assert_eq!(created["environment"], "pr-1");
    assert_eq!(created["kind"], "pull_request");
    assert_eq!(created["clone_parent_data"], true);
    assert_eq!(created["url"], "https://pr-1.example.com");
    assert_eq!(created["pull_request"]["id"], 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_receiver_is_retried_then_dead_lettered(pool: PgPool) {
    let receiver = Receiver::default();
    *receiver.failures_left.lock().unwrap() = 2;
    let integration = setup(&pool, &receiver).await;
    relay_store::jobs::enqueue(
        &pool,
        &integration.id,
        None,
        &notify("main", DeployEvent::Activated),
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let runner = runner(&pool, data.path(), 3);
    for _ in 0..6 {
        while runner.run_next().await.unwrap() {}
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *receiver.attempts.lock().unwrap(),
        3,
        "two failures, then success"
    );
    assert_eq!(receiver.events.lock().unwrap().len(), 1);

    // A receiver that never recovers: dead after the last attempt, visible, retryable.
    *receiver.failures_left.lock().unwrap() = 100;
    relay_store::jobs::enqueue(
        &pool,
        &integration.id,
        None,
        &notify("main", DeployEvent::Deactivated),
    )
    .await
    .unwrap();
    for _ in 0..6 {
        while runner.run_next().await.unwrap() {}
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = relay_store::jobs::list(&pool, None, None, Some(JobState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("500"),
        "{:?}",
        dead[0].last_error
    );
    assert!(!dead[0].last_error.as_deref().unwrap().contains("whsec_"));
    // The CLI's `--state failed` is the dead letter; the JSON says "dead", as stored.
    let listed = Relay::new(&pool).json(&["job:list", "--state", "failed"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], dead[0].id);
    assert_eq!(listed[0]["state"], "dead");
    assert_eq!(listed[0]["kind"], "notify_deploy_side");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_dead_relays_job_is_taken_over_after_its_lease(pool: PgPool) {
    let receiver = Receiver::default();
    let integration = setup(&pool, &receiver).await;
    relay_store::jobs::enqueue(
        &pool,
        &integration.id,
        None,
        &notify("main", DeployEvent::Activated),
    )
    .await
    .unwrap();
    // A relay claims the job and dies without finishing or renewing it.
    let stale = relay_store::jobs::claim(
        &pool,
        &[JobKind::NotifyDeploySide],
        Duration::from_millis(300),
    )
    .await
    .unwrap()
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let runner = runner(&pool, data.path(), 3);
    assert!(!runner.run_next().await.unwrap(), "the lease still holds");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        runner.run_next().await.unwrap(),
        "taken over once the lease ran out"
    );
    assert_eq!(receiver.events.lock().unwrap().len(), 1);
    // The dead relay, had it come back, cannot complete what it no longer owns.
    assert!(!relay_store::jobs::succeed(&pool, &stale).await.unwrap());
    let jobs = relay_store::jobs::list(&pool, None, None, None, 10)
        .await
        .unwrap();
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Succeeded, 2));
}
