//! Faults under load, loopback only and bounded in time: the relay killed with SIGKILL, its
//! database going away and coming back, several relays sharing one database.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::proxy::DbProxy;
use crate::support::serve::ServeProcess;
use crate::support::*;

/// Senders posting signed pushes with unique request ids until `stop`; returns the ids that
/// were answered 2xx (each one a promise that the delivery is durable).
async fn load(
    targets: Vec<(String, String)>,
    senders: usize,
    until: Instant,
    prefix: &str,
) -> (HashSet<String>, u64) {
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let refused = Arc::new(Mutex::new(0u64));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let (client, body, acknowledged, refused, targets) = (
            client.clone(),
            body.clone(),
            acknowledged.clone(),
            refused.clone(),
            targets.clone(),
        );
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < until {
                let (url, secret) = &targets[(sender + n) % targets.len()];
                let request_id = format!("{prefix}-{sender}-{n}");
                n += 1;
                let response = client
                    .post(url)
                    .header("x-event-key", "repo:push")
                    .header("x-request-uuid", &request_id)
                    .header("x-hub-signature", sign(secret, &body))
                    .body(body.clone())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().unwrap().insert(request_id);
                    }
                    Ok(r) => {
                        assert_ne!(r.status().as_u16(), 500, "never a 500");
                        *refused.lock().unwrap() += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_) => {
                        *refused.lock().unwrap() += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let refused = *refused.lock().unwrap();
    (acknowledged, refused)
}

async fn wait_until_processed(pool: &PgPool) {
    let pending = wait_for_no_pending(pool, Duration::from_secs(30)).await;
    assert_eq!(pending, 0, "{pending} deliveries still pending");
}

async fn assert_stored_and_processed_once(pool: &PgPool, acknowledged: &HashSet<String>) {
    let stored: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT request_id, status, attempts FROM deliveries")
            .fetch_all(pool)
            .await
            .unwrap();
    let ids: HashSet<&String> = stored.iter().map(|(id, _, _)| id).collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !ids.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        stored
            .iter()
            .all(|(_, status, attempts)| status == "processed" && *attempts == 1),
        "each delivery processed exactly once"
    );
    // Identical pushes: only the first processed one of each integration decides anything.
    let with_jobs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT integration_id, count(DISTINCT delivery_id) FROM jobs GROUP BY integration_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        with_jobs.iter().all(|(_, n)| *n == 1),
        "replays decided nothing twice: {with_jobs:?}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn sigkill_under_load_loses_no_acknowledged_delivery(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&[]);
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["webhook_secret"].as_str().unwrap().to_owned(),
    );
    let first = ServeProcess::start_with(&relay, &[], false);
    let target = vec![(
        format!("http://{}/webhooks/bitbucket/{id}", first.addr),
        secret.clone(),
    )];
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        tokio::task::spawn_blocking(move || first.kill())
            .await
            .unwrap();
    });
    let (acknowledged, refused) = load(
        target,
        16,
        Instant::now() + Duration::from_millis(1600),
        "kill",
    )
    .await;
    killer.await.unwrap();
    assert!(acknowledged.len() > 50, "load ran: {}", acknowledged.len());
    assert!(refused > 0, "the kill interrupted the load");

    let second = ServeProcess::start_with(&relay, &[], false);
    wait_until_processed(&pool).await;
    assert_stored_and_processed_once(&pool, &acknowledged).await;
    second.terminate();
}

#[sqlx::test(migrations = "../../migrations")]
async fn database_down_and_up_under_load_loses_nothing_acknowledged(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&[]);
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["webhook_secret"].as_str().unwrap().to_owned(),
    );
    let proxy = DbProxy::start(postgres_addr()).await;
    let via_proxy = database_url_via(&pool, Some(proxy.port));
    // The proxy runs on this test's runtime: wait for readiness off it.
    let starter = relay.clone();
    let serve = tokio::task::spawn_blocking(move || {
        ServeProcess::start_with(
            &starter,
            &[
                ("DATABASE_URL", via_proxy.as_str()),
                ("RELAY_DB_ACQUIRE_TIMEOUT_SECS", "1"),
            ],
            false,
        )
    })
    .await
    .unwrap();
    let target = vec![(
        format!("http://{}/webhooks/bitbucket/{id}", serve.addr),
        secret,
    )];
    let target_after = target[0].clone();
    let proxy = Arc::new(proxy);
    let flapper = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            proxy.down();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            proxy.up();
        })
    };
    let (acknowledged, refused) = load(
        target,
        8,
        Instant::now() + Duration::from_millis(4500),
        "flap",
    )
    .await;
    flapper.await.unwrap();
    assert!(
        refused > 0,
        "requests were refused while the database was down"
    );
    let late: Vec<&String> = acknowledged.iter().collect();
    assert!(late.len() > 20, "{}", late.len());
    // Answered again after the database came back, by the same process (no restart).
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let (url, secret) = &target_after;
    let after = reqwest::Client::new()
        .post(url)
        .header("x-event-key", "repo:push")
        .header("x-request-uuid", "after-recovery")
        .header("x-hub-signature", sign(secret, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 202, "the relay recovered without a restart");
    let mut acknowledged = acknowledged;
    acknowledged.insert("after-recovery".to_owned());
    wait_until_processed(&pool).await;
    assert_stored_and_processed_once(&pool, &acknowledged).await;
    serve.terminate();
    // The proxy's upstream sessions close a moment after it stops; the test's database can
    // only be dropped once they have.
    drop(proxy);
    sessions_gone(&pool).await;
}

/// Waits until only this test's own connections use its database.
async fn sessions_gone(pool: &PgPool) {
    for _ in 0..200 {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if others <= i64::from(pool.size()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn three_relays_on_one_database_process_each_delivery_once(pool: PgPool) {
    let relay = Relay::new(&pool);
    let integrations: Vec<(String, String)> = (0..3)
        .map(|_| {
            let created = relay.add_cloud(&[]);
            (
                created["id"].as_str().unwrap().to_owned(),
                created["webhook_secret"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let relays: Vec<ServeProcess> = (0..3)
        .map(|_| ServeProcess::start_with(&relay, &[], false))
        .collect();
    let mut targets = Vec::new();
    for serve in &relays {
        for (id, secret) in &integrations {
            targets.push((
                format!("http://{}/webhooks/bitbucket/{id}", serve.addr),
                secret.clone(),
            ));
        }
    }
    let (acknowledged, _) = load(
        targets,
        12,
        Instant::now() + Duration::from_millis(1500),
        "multi",
    )
    .await;
    assert!(acknowledged.len() > 50);
    wait_until_processed(&pool).await;
    assert_stored_and_processed_once(&pool, &acknowledged).await;
    // Order is the order deliveries were stored in; with three relays storing concurrently,
    // ids are drawn before commit, so id order is not that order and is not checked here
    // (tests/e2e/processing.rs checks order on deliveries stored before processing).
    for serve in relays {
        serve.terminate();
    }
}
