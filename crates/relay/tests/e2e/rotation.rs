//! Secret rotation with grace: a rotated webhook secret is re-registered on Bitbucket, the
//! previous one is accepted until the grace ends and refused after; a rotated deploy-hook
//! secret signs events together with the previous one during its grace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use relay::metrics::Metrics;
use relay::worker::jobs::{Runner, RunnerConfig};
use relay_core::{DeployEvent, IntegrationType, JobSpec};
use relay_testkit::{FakeBitbucket, Flavor};
use sha2::Sha256;
use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::*;

async fn run_json(relay: &Relay, args: &[&str]) -> serde_json::Value {
    let relay = relay.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        relay.json(&args)
    })
    .await
    .unwrap()
}

async fn post(server: &TestServer, id: &str, secret: &str, request_id: &str) -> u16 {
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    post_delivery(
        &server.hook_url(id),
        IntegrationType::Cloud,
        "repo:push",
        request_id,
        &body,
        Some(sign(secret, &body)),
    )
    .await
    .status()
    .as_u16()
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rotated_webhook_secret_keeps_the_previous_one_for_the_grace(pool: PgPool) {
    let fake = FakeBitbucket::start(Flavor::Cloud).await;
    fake.create_repo("team", "app");
    fake.commit_file("team", "app", "main", "README", "hi\n", "first");
    let relay = Relay::new(&pool)
        .with_env("RELAY_BITBUCKET_CLOUD_URL", fake.base_url().as_str())
        .with_env("RELAY_BITBUCKET_CLOUD_API_URL", fake.api_url().as_str());
    let (key, secret) = fake.consumer();
    let (key, secret) = (format!("--key={key}"), format!("--secret={secret}"));
    let created = run_json(
        &relay,
        &[
            "integration:add",
            "--type=bitbucket",
            "--repository=team/app",
            &key,
            &secret,
        ],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let old = created["webhook_secret"].as_str().unwrap().to_owned();
    let server = TestServer::start(pool.clone()).await;
    assert_eq!(post(&server, &id, &old, "before").await, 202);

    let rotated = run_json(
        &relay,
        &[
            "integration:update",
            &id,
            "--rotate-webhook-secret",
            "--webhook-secret-grace=2s",
        ],
    )
    .await;
    let new = rotated["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(new.len() >= 32);
    assert!(rotated["previous_webhook_secret_valid_until"].is_string());
    assert_eq!(
        fake.webhooks("team", "app")[0].secret.as_deref(),
        Some(new.as_str()),
        "re-registered with the new secret"
    );
    // Shown once: afterwards only "set".
    let shown = run_json(&relay, &["integration:get", &id]).await;
    assert_eq!(shown["webhook_secret"], "set");

    // At once (the cached secret is read again), and during the grace, both are accepted.
    assert_eq!(post(&server, &id, &new, "new-1").await, 202);
    assert_eq!(post(&server, &id, &old, "old-in-grace").await, 202);
    let metrics = server.state.metrics.render();
    assert!(
        metrics.contains("relay_webhook_secret_verifications_total{secret=\"previous\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("relay_webhook_secret_verifications_total{secret=\"current\"}"));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(post(&server, &id, &old, "old-after-grace").await, 401);
    assert_eq!(post(&server, &id, &new, "new-2").await, 202);

    // A grace without a rotation, or a rotation with a chosen secret, is refused.
    let output = relay.run(&["integration:update", &id, "--webhook-secret-grace=1h"]);
    assert_eq!(output.status.code(), Some(2));
    let output = relay.run(&[
        "integration:update",
        &id,
        "--rotate-webhook-secret",
        "--webhook-secret=0123456789abcdefgh",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[derive(Clone, Default)]
struct Receiver {
    signatures: Arc<Mutex<Vec<(String, String, Bytes)>>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let signed = format!("{}.{}", header("webhook-id"), header("webhook-timestamp"));
    receiver
        .signatures
        .lock()
        .unwrap()
        .push((signed, header("webhook-signature"), body));
    StatusCode::NO_CONTENT
}

fn signature(secret: &str, signed: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_rotated_deploy_hook_secret_signs_with_both_during_the_grace(pool: PgPool) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let relay = Relay::new(&pool);
    let hook = format!("--deploy-hook-url={url}");
    let created = relay.add_cloud(&[&hook]);
    let id = created["id"].as_str().unwrap().to_owned();
    let old = created["deploy_hook_secret"].as_str().unwrap().to_owned();
    let rotated = relay.json(&[
        "integration:update",
        &id,
        "--rotate-deploy-hook-secret",
        "--deploy-hook-secret-grace=4s",
    ]);
    let new = rotated["deploy_hook_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);

    let data = tempfile::tempdir().unwrap();
    let config = RunnerConfig::new(data.path().to_path_buf(), nowhere());
    let runner = Runner::new(pool.clone(), key(), Arc::new(Metrics::new()), config);
    let notify = JobSpec::NotifyDeploySide {
        environment: "pr-1".into(),
        event: DeployEvent::Created,
        parent: None,
        clone_parent_data: false,
    };
    relay_store::jobs::enqueue(&pool, &id, None, &notify)
        .await
        .unwrap();
    while runner.run_next().await.unwrap() {}
    sqlx::query("UPDATE previous_secrets SET expires_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    relay_store::jobs::enqueue(&pool, &id, None, &notify)
        .await
        .unwrap();
    while runner.run_next().await.unwrap() {}

    let calls = receiver.signatures.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let (signed, header, body) = &calls[0];
    let listed: Vec<&str> = header.split(' ').collect();
    assert_eq!(
        listed,
        [signature(&new, signed, body), signature(&old, signed, body)],
        "both signatures during the grace"
    );
    let (signed, header, body) = &calls[1];
    assert_eq!(
        header,
        &signature(&new, signed, body),
        "only the new one after it"
    );
}
