//! The deploy hook's circuit breaker: consecutive failures open it, jobs then wait without
//! using attempts, one probe at a time goes (backing off while it fails), and once a probe
//! succeeds everything that waited is delivered in order.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use relay::metrics::Metrics;
use relay::worker::circuit::CircuitConfig;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay::worker::retry::RetrySchedule;
use relay_core::{DeployEvent, IntegrationType, JobSpec};
use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::*;

#[derive(Clone, Default)]
struct Hook {
    down: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
    received: Arc<Mutex<Vec<(String, String)>>>,
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> StatusCode {
    hook.calls.fetch_add(1, Ordering::SeqCst);
    if hook.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    hook.received.lock().unwrap().push((
        event["data"]["environment"].as_str().unwrap().to_owned(),
        event["type"].as_str().unwrap().to_owned(),
    ));
    StatusCode::NO_CONTENT
}

async fn start_hook(hook: Hook) -> String {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(hook);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

fn notify(environment: &str, event: DeployEvent) -> JobSpec {
    JobSpec::NotifyDeploySide {
        environment: environment.into(),
        event,
        parent: Some("main".into()),
        clone_parent_data: false,
    }
}

async fn circuit_state(pool: &PgPool, integration: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT state FROM circuits WHERE integration_id = $1 AND target = 'deploy_hook'",
    )
    .bind(integration)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn attempts(pool: &PgPool) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT state, attempts FROM jobs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn run_all(runner: &Runner) {
    while runner.run_next().await.unwrap() {}
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_open_circuit_holds_jobs_without_burning_attempts(pool: PgPool) {
    let hook = Hook::default();
    hook.down.store(true, Ordering::SeqCst);
    let url = start_hook(hook.clone()).await;
    let integration = add_integration(&pool, IntegrationType::Cloud).await;
    sqlx::query("UPDATE integrations SET deploy_hook_url = $1")
        .bind(&url)
        .execute(&pool)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(data.path().to_path_buf(), nowhere());
    // The retry must not fall due before the second lane's head has run (on a slow machine a
    // 20 ms retry of the first head came first, burning its second attempt), yet well before
    // the probe at 400 ms.
    config.retry = RetrySchedule {
        delays: vec![Duration::from_millis(200)],
        max_attempts: 3,
    };
    config.circuit = CircuitConfig {
        failures: 2,
        probe: Duration::from_millis(400),
        max_probe: Duration::from_secs(2),
        probe_hold: Duration::from_secs(5),
    };
    let metrics = Arc::new(Metrics::new());
    let runner = Runner::new(pool.clone(), key(), metrics.clone(), config);
    let events = [
        ("pr-1", DeployEvent::Created),
        ("pr-2", DeployEvent::Created),
        ("pr-1", DeployEvent::Activated),
        ("pr-2", DeployEvent::Activated),
    ];
    for (environment, event) in events {
        relay_store::jobs::enqueue(&pool, &integration.id, None, &notify(environment, event))
            .await
            .unwrap();
    }

    // Two failures (one per lane head) open the circuit; retries then wait for the probe.
    run_all(&runner).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    run_all(&runner).await;
    assert_eq!(
        circuit_state(&pool, &integration.id).await.as_deref(),
        Some("open")
    );
    assert_eq!(hook.calls.load(Ordering::SeqCst), 2, "no calls while open");
    let held = attempts(&pool).await;
    assert!(
        held.iter().all(|(state, n)| state == "pending" && *n <= 1),
        "{held:?}"
    );

    let relay = Relay::new(&pool);
    let shown = relay.json(&["integration:get", &integration.id]);
    assert_eq!(shown["deploy_hook_circuit"], "open");
    assert_eq!(shown["bitbucket_circuit"], "closed");
    relay::worker::sampler::sample(&pool, &metrics)
        .await
        .unwrap();
    let rendered = metrics.render();
    let open_series = format!(
        "relay_circuit_state{{integration=\"{}\",circuit=\"deploy_hook\",state=\"open\"}} 1",
        integration.id
    );
    assert!(rendered.contains(&open_series), "{rendered}");

    // The probe fails: still open, one more call only, and the next probe waits longer.
    tokio::time::sleep(Duration::from_millis(450)).await;
    run_all(&runner).await;
    assert_eq!(hook.calls.load(Ordering::SeqCst), 3, "exactly one probe");
    assert_eq!(
        circuit_state(&pool, &integration.id).await.as_deref(),
        Some("open")
    );
    let interval: Option<i64> =
        sqlx::query_scalar("SELECT probe_interval_ms FROM circuits WHERE integration_id = $1")
            .bind(&integration.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(interval, Some(800));
    // Several probe rounds later no job is dead: waiting used no attempts.
    hook.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(850)).await;
    for _ in 0..5 {
        run_all(&runner).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        circuit_state(&pool, &integration.id).await.as_deref(),
        Some("closed")
    );
    assert!(
        attempts(&pool)
            .await
            .iter()
            .all(|(state, _)| state == "succeeded"),
        "{:?}",
        attempts(&pool).await
    );
    let received = hook.received.lock().unwrap().clone();
    let per_environment = |name: &str| -> Vec<String> {
        received
            .iter()
            .filter(|(e, _)| e == name)
            .map(|(_, t)| t.clone())
            .collect()
    };
    for environment in ["pr-1", "pr-2"] {
        assert_eq!(
            per_environment(environment),
            ["environment.created", "environment.activated"],
            "{received:?}"
        );
    }
    assert_eq!(
        relay.json(&["integration:get", &integration.id])["deploy_hook_circuit"],
        "closed"
    );
}
