//! add/update/delete/validate against a fake Bitbucket (Cloud and Server flavours): the
//! webhook is registered with the hook URL, events and secret, removed on delete, and
//! `integration:validate` says what is wrong.

use relay_testkit::{FakeBitbucket, Flavor};
use sqlx::PgPool;

use crate::cli::Relay;

/// Runs the CLI off the runtime (the fake Bitbucket answers on it).
async fn run(relay: &Relay, args: &[&str]) -> std::process::Output {
    let relay = relay.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        relay.run(&args)
    })
    .await
    .unwrap()
}

fn with_cloud(relay: &Relay, fake: &FakeBitbucket) -> Relay {
    relay
        .clone()
        .with_env("RELAY_BITBUCKET_CLOUD_URL", fake.base_url().as_str())
        .with_env("RELAY_BITBUCKET_CLOUD_API_URL", fake.api_url().as_str())
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_add_registers_validate_checks_delete_removes(pool: PgPool) {
    let fake = FakeBitbucket::start(Flavor::Cloud).await;
    fake.create_repo("team", "app");
    fake.commit_file("team", "app", "main", "README", "hi\n", "first");
    let relay = with_cloud(&Relay::new(&pool), &fake);
    let (key, secret) = fake.consumer();
    let key_flag = format!("--key={key}");
    let secret_flag = format!("--secret={secret}");
    let add = run(
        &relay,
        &[
            "integration:add",
            "--type=bitbucket",
            "--repository=team/app",
            &key_flag,
            &secret_flag,
            "--format",
            "json",
        ],
    )
    .await;
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let hooks = fake.webhooks("team", "app");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].url, created["hook_url"].as_str().unwrap());
    assert_eq!(
        hooks[0].secret.as_deref(),
        created["webhook_secret"].as_str()
    );
    for event in [
        "repo:push",
        "pullrequest:created",
        "pullrequest:updated",
        "pullrequest:fulfilled",
        "pullrequest:rejected",
    ] {
        assert!(
            hooks[0].events.iter().any(|e| e == event),
            "{event} in {:?}",
            hooks[0].events
        );
    }
    let first_sync: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'reconcile'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(first_sync, 1, "the first sync is queued");

    let validate = run(&relay, &["integration:validate", &id]).await;
    let text = String::from_utf8_lossy(&validate.stdout);
    assert_eq!(validate.status.code(), Some(0), "{text}");
    for check in [
        "credentials",
        "repository",
        "webhook permission",
        "webhook events",
        "webhook secret",
    ] {
        assert!(text.contains(&format!("[pass] {check}")), "{check}: {text}");
    }

    // Without admin rights on webhooks: validate says so and exits 4.
    fake.set_webhook_admin(false);
    let validate = run(&relay, &["integration:validate", &id]).await;
    let text = String::from_utf8_lossy(&validate.stdout);
    assert_eq!(validate.status.code(), Some(4), "{text}");
    assert!(
        text.contains("[FAIL] webhook permission") && text.contains("fix:"),
        "{text}"
    );
    fake.set_webhook_admin(true);

    // Rotating the secret re-registers the webhook with the new one.
    let update = run(
        &relay,
        &[
            "integration:update",
            &id,
            "--webhook-secret=rotated-secret-value",
        ],
    )
    .await;
    assert!(
        update.status.success(),
        "{}",
        String::from_utf8_lossy(&update.stderr)
    );
    assert_eq!(
        fake.webhooks("team", "app")[0].secret.as_deref(),
        Some("rotated-secret-value")
    );

    let delete = run(&relay, &["integration:delete", &id]).await;
    assert!(
        delete.status.success(),
        "{}",
        String::from_utf8_lossy(&delete.stderr)
    );
    assert!(
        fake.webhooks("team", "app").is_empty(),
        "the webhook is removed"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_add_that_bitbucket_refuses_leaves_nothing(pool: PgPool) {
    let fake = FakeBitbucket::start(Flavor::Cloud).await;
    fake.create_repo("team", "app");
    let relay = with_cloud(&Relay::new(&pool), &fake);
    let add = run(
        &relay,
        &[
            "integration:add",
            "--type=bitbucket",
            "--repository=team/app",
            "--key=wrong",
            "--secret=wrong",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&add.stderr);
    assert_eq!(add.status.code(), Some(6), "{stderr}");
    assert!(stderr.starts_with("error: Bitbucket:"), "{stderr}");
    assert!(!stderr.contains("wrong\n"), "{stderr}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no half-made integration");
    assert!(fake.webhooks("team", "app").is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn server_add_registers_and_validate_reports_a_missing_webhook(pool: PgPool) {
    let fake = FakeBitbucket::start(Flavor::Server).await;
    fake.create_repo("PRJ", "app");
    fake.commit_file("PRJ", "app", "main", "README", "hi\n", "first");
    let relay = Relay::new(&pool);
    let base = format!("--base-url={}", fake.base_url());
    let token = format!("--token={}", fake.server_token());
    let add = run(
        &relay,
        &[
            "integration:add",
            "--type=bitbucket_server",
            "--repository=PRJ/app",
            &base,
            &token,
            "--format",
            "json",
        ],
    )
    .await;
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let id = serde_json::from_slice::<serde_json::Value>(&add.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hooks = fake.webhooks("PRJ", "app");
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].events.iter().any(|e| e == "repo:refs_changed"));
    assert!(hooks[0].events.iter().any(|e| e == "pr:from_ref_updated"));

    let validate = run(&relay, &["integration:validate", &id]).await;
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&validate.stdout)
    );

    // Someone deleted the webhook in Bitbucket.
    let delete = run(
        &relay.clone(),
        &["integration:delete", &id, "--register-webhook=false"],
    )
    .await;
    assert!(delete.status.success());
    let add = run(
        &relay,
        &[
            "integration:add",
            "--type=bitbucket_server",
            "--repository=PRJ/app",
            &base,
            &token,
            "--register-webhook=false",
            "--format",
            "json",
        ],
    )
    .await;
    let id = serde_json::from_slice::<serde_json::Value>(&add.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let validate = run(&relay, &["integration:validate", &id, "--format", "json"]).await;
    assert_eq!(validate.status.code(), Some(4));
    let checks: serde_json::Value = serde_json::from_slice(&validate.stdout).unwrap();
    let webhook = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "webhook")
        .unwrap();
    assert_eq!(webhook["passed"], false);
    assert!(webhook["hint"]
        .as_str()
        .unwrap()
        .contains("integration:update"));
}
