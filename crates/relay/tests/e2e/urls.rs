//! URLs and remotes an admin sets: checked in one place (CLI and API alike), and shown
//! everywhere without the credentials they may carry.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::*;

const HOOK: &str = "https://hookuser:hookpass@hooks.example.com/x?token=tok123&env=prod";
const REMOTE: &str = "https://ghp_secrettoken@git.example.com/team/app.git";
const SECRETS: [&str; 5] = [
    "hookuser",
    "hookpass",
    "tok123",
    "ghp_secrettoken",
    "basepass",
];

fn assert_hidden(shown: &str) {
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
    }
}

async fn api_get(server: &TestServer, path: &str) -> Value {
    reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn api_patch(server: &TestServer, id: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .patch(server.url(&format!("/api/v1/integrations/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[sqlx::test(migrations = "../../migrations")]
async fn credentials_in_urls_are_never_shown(pool: PgPool) {
    let relay = Relay::new(&pool);
    let hook = format!("--deploy-hook-url={HOOK}");
    let remote = format!("--deploy-remote={REMOTE}");
    let added = relay.add_cloud(&[&hook, &remote]);
    assert_hidden(&added.to_string());
    let id = added["id"].as_str().unwrap().to_owned();
    // A Server row whose base_url an older version stored with credentials.
    let server_id = relay.json(&[
        "integration:add",
        "--type=bitbucket_server",
        "--repository=PRJ/app",
        "--base-url=https://bitbucket.example.com",
        "--token=server-token-value",
        "--register-webhook=false",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("UPDATE integrations SET base_url = 'https://admin:basepass@bitbucket.example.com' WHERE id = $1")
        .bind(&server_id)
        .execute(&pool)
        .await
        .unwrap();

    let view = relay.json(&["integration:get", &id]);
    assert_eq!(
        view["deploy_hook_url"],
        "https://*****:*****@hooks.example.com/x?token=*****&env=prod"
    );
    assert_eq!(
        view["deploy_remote"],
        "https://*****@git.example.com/team/app.git"
    );
    for args in [
        vec!["integration:get", id.as_str()],
        vec!["integration:get", server_id.as_str()],
        vec!["integration:list"],
        vec!["integration:list", "--format", "json"],
        vec!["integration:get", server_id.as_str(), "--format", "json"],
    ] {
        assert_hidden(&relay.ok(&args));
    }
    let server = TestServer::start(pool.clone()).await;
    assert_hidden(&api_get(&server, "/api/v1/integrations").await.to_string());
    let one = api_get(&server, &format!("/api/v1/integrations/{server_id}")).await;
    assert_eq!(
        one["base_url"],
        "https://*****:*****@bitbucket.example.com/"
    );

    // New credentials in base_url are refused, without repeating them.
    let (status, body) = api_patch(
        &server,
        &server_id,
        json!({"base_url": "https://admin:basepass@bitbucket.example.com"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_hidden(&body.to_string());
}

#[sqlx::test(migrations = "../../migrations")]
async fn remotes_and_targets_are_checked_the_same_by_cli_and_api(pool: PgPool) {
    let relay = Relay::new(&pool);
    let id = relay.add_cloud(&[])["id"].as_str().unwrap().to_owned();
    let server = TestServer::start(pool.clone()).await;
    let refused = [
        (
            "deploy_remote",
            "ssh://-oProxyCommand=touch%20/tmp/pwned/a.git",
        ),
        ("deploy_remote", "-uhttps://git.example.com/a.git"),
        ("deploy_remote", "git@-oProxyCommand=x:team/a.git"),
        (
            "deploy_remote",
            "https://git.example.com/-upload-pack/a.git",
        ),
        (
            "deploy_hook_url",
            "http://169.254.169.254/latest/meta-data/",
        ),
        ("deploy_hook_url", "http://0/"),
        ("deploy_hook_url", "http://[fe80::1]/hook"),
    ];
    for (field, value) in refused {
        let flag = format!("--{}={value}", field.replace('_', "-"));
        let output = relay.run(&["integration:update", &id, &flag]);
        assert_eq!(output.status.code(), Some(2), "{field}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(field), "{stderr}");
        let (status, body) = api_patch(&server, &id, json!({ field: value })).await;
        assert_eq!(status, 422, "{field}={value}");
        assert!(body["error"].as_str().unwrap().starts_with(field), "{body}");
    }
    let view = relay.json(&["integration:get", &id]);
    assert!(view["deploy_remote"].is_null() && view["deploy_hook_url"].is_null());
}

#[sqlx::test(migrations = "../../migrations")]
async fn weak_secrets_and_huge_fields_are_refused_with_clear_errors(pool: PgPool) {
    let relay = Relay::new(&pool);
    let output = relay.run(&[
        "integration:add",
        "--type=bitbucket",
        "--repository=ws/repo",
        "--key=k",
        "--secret=s",
        "--webhook-secret=x",
        "--register-webhook=false",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("webhook_secret must be at least 16 characters"),
        "{stderr}"
    );

    let id = relay.json(&[
        "integration:add",
        "--type=bitbucket_server",
        "--repository=PRJ/app",
        "--base-url=https://bitbucket.example.com",
        "--token=server-token-value",
        "--register-webhook=false",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = TestServer::start(pool.clone()).await;
    // The API also caps the body (RELAY_MAX_BODY_BYTES; 256 KB here): 100 KB fits.
    let huge = "u".repeat(100 * 1024);
    for (field, message) in [
        ("username", "username must be at most 1024 bytes"),
        ("token", "token must be at most 4096 bytes"),
        (
            "webhook_secret",
            "webhook_secret must be at most 4096 bytes",
        ),
    ] {
        let (status, body) = api_patch(&server, &id, json!({ field: huge })).await;
        assert_eq!((status, body["error"].as_str().unwrap()), (422, message));
    }
    let long_url = format!("https://hooks.example.com/{}", "a".repeat(3000));
    let (status, body) = api_patch(&server, &id, json!({ "deploy_hook_url": long_url })).await;
    assert_eq!(status, 422);
    assert!(body["error"].as_str().unwrap().contains("longer than 2048"));
}

#[sqlx::test(migrations = "../../migrations")]
async fn cloud_registration_refuses_a_public_url_bitbucket_cannot_reach(pool: PgPool) {
    let relay = Relay::new(&pool)
        .with_env("RELAY_PUBLIC_URL", "http://0.0.0.0:8080")
        .with_env("RELAY_BITBUCKET_CLOUD_URL", "http://127.0.0.1:9")
        .with_env("RELAY_BITBUCKET_CLOUD_API_URL", "http://127.0.0.1:9");
    let args = [
        "integration:add",
        "--type=bitbucket",
        "--repository=ws/repo",
        "--key=consumer-key",
        "--secret=consumer-secret-value",
    ];
    let output = relay.run(&args);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Bitbucket Cloud cannot reach"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(relay.json(&["integration:list"]), json!([]));

    // Forced, it tries (and here fails to reach Bitbucket: exit 6, nothing left behind).
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(relay.run(&forced).status.code(), Some(6));

    // Without registration it is added, with a warning.
    let mut unregistered = args.to_vec();
    unregistered.push("--register-webhook=false");
    let added = relay.json(&unregistered);
    let warnings = added["warnings"].to_string();
    assert!(warnings.contains("cannot reach"), "{warnings}");
}
