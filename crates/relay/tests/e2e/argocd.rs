//! Argo CD's ApplicationSet plugin generator over real HTTP: the token, the parameters in
//! the pull-request generator's names, the filters, and errors that never look like an empty
//! list.

use relay_core::IntegrationType;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

pub(crate) const PLUGIN_TOKEN: &str = "test-plugin-token";
const PATH: &str = "/api/v1/getparams.execute";
const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

/// POSTs as Argo CD's ApplicationSet controller does (its `internal/http` client).
pub(crate) async fn getparams(
    server: &TestServer,
    token: Option<&str>,
    parameters: Value,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(server.url(PATH))
        .header("User-Agent", "argocd-applicationset")
        .json(&json!({ "applicationSetName": "previews", "input": { "parameters": parameters } }));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn plugin_server(pool: &PgPool) -> TestServer {
    let config = test_config(&[("RELAY_ARGOCD_PLUGIN_TOKEN", PLUGIN_TOKEN)]);
    TestServer::start_config(pool.clone(), config).await
}

async fn environment(
    pool: &PgPool,
    integration: &str,
    name: &str,
    kind: &str,
    status: &str,
    branch: Option<&str>,
    pr: Option<(i64, &str, &str)>,
) {
    sqlx::query(
        "INSERT INTO environments (integration_id, name, kind, status, branch, head_commit,
             pr_id, pr_source_branch, pr_target_branch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(integration)
    .bind(name)
    .bind(kind)
    .bind(status)
    .bind(branch)
    .bind(HEAD)
    .bind(pr.map(|p| p.0))
    .bind(pr.map(|p| p.1))
    .bind(pr.map(|p| p.2))
    .execute(pool)
    .await
    .unwrap();
}

/// main (production, active), feature/login (branch, inactive), pr-7 (active), pr-8
/// (failed), pr-9 (deleted); the deploy remote carries credentials.
async fn seed(pool: &PgPool) -> String {
    let integration = add_integration(pool, IntegrationType::Cloud).await.id;
    sqlx::query("UPDATE integrations SET deploy_remote = 'https://x-token-auth:deploy-secret@git.example.com/acme/deploy.git', environment_url = 'https://{environment}.preview.example.com'")
        .execute(pool)
        .await
        .unwrap();
    let e = |n, k, s, b, p| environment(pool, &integration, n, k, s, b, p);
    e("main", "production", "active", Some("main"), None).await;
    e(
        "feature-login-1a2b3c4d",
        "branch",
        "inactive",
        Some("feature/login"),
        None,
    )
    .await;
    e(
        "pr-7",
        "pull_request",
        "active",
        None,
        Some((7, "feature/Login_Form", "main")),
    )
    .await;
    e(
        "pr-8",
        "pull_request",
        "failed",
        None,
        Some((8, "fix/x", "main")),
    )
    .await;
    e(
        "pr-9",
        "pull_request",
        "deleted",
        None,
        Some((9, "old", "main")),
    )
    .await;
    integration
}

fn names(body: &Value) -> Vec<String> {
    body["output"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["environment"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn active_environments_in_the_pull_request_generators_names(pool: PgPool) {
    let integration = seed(&pool).await;
    let server = plugin_server(&pool).await;
    let (status, body) = getparams(&server, Some(PLUGIN_TOKEN), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["main", "pr-7"]);
    let pr = &body["output"]["parameters"][1];
    let expected = json!({
        "number": "7",
        "branch": "feature/Login_Form",
        "branch_slug": "feature-login-form",
        "target_branch": "main",
        "target_branch_slug": "main",
        "head_sha": HEAD,
        "head_short_sha": "01234567",
        "head_short_sha_7": "0123456",
        "environment": "pr-7",
        "kind": "pull_request",
        "status": "active",
        "integration": integration,
        "repository": "brydzewski/foo",
        "url": "https://pr-7.preview.example.com",
        "ref": "refs/heads/pr-7",
        "deploy_remote": "https://git.example.com/acme/deploy.git",
    });
    assert_eq!(pr, &expected);
    let main = &body["output"]["parameters"][0];
    assert_eq!(main["ref"], "refs/heads/main");
    assert_eq!(main["number"], "");
    assert_eq!(main["branch"], "main");
    // Every value of every parameter set is a string, and no credential leaves the relay.
    for set in body["output"]["parameters"].as_array().unwrap() {
        assert!(
            set.as_object().unwrap().values().all(Value::is_string),
            "{set}"
        );
    }
    assert!(!body.to_string().contains("deploy-secret"));
    assert!(!body.to_string().contains("x-token-auth"));
}

#[sqlx::test(migrations = "../../migrations")]
async fn input_parameters_filter(pool: PgPool) {
    let integration = seed(&pool).await;
    let other = add_integration(&pool, IntegrationType::Server).await.id;
    environment(
        &pool,
        &other,
        "master",
        "production",
        "active",
        Some("master"),
        None,
    )
    .await;
    let server = plugin_server(&pool).await;
    let cases = [
        (json!({}), vec!["main", "pr-7", "master"]),
        (json!({"integration": integration}), vec!["main", "pr-7"]),
        (json!({"kind": "pull_request"}), vec!["pr-7"]),
        (
            json!({"status": "active,failed", "kind": ["pull_request"]}),
            vec!["pr-7", "pr-8"],
        ),
        (
            json!({"status": "inactive"}),
            vec!["feature-login-1a2b3c4d"],
        ),
        (
            json!({"integration": other, "kind": "production"}),
            vec!["master"],
        ),
        // Keys the relay does not know are the ApplicationSet's own.
        (
            json!({"team": "web", "replicas": 2}),
            vec!["main", "pr-7", "master"],
        ),
    ];
    for (parameters, expected) in cases {
        let (status, body) = getparams(&server, Some(PLUGIN_TOKEN), parameters.clone()).await;
        assert_eq!(status, 200, "{parameters}: {body}");
        let mut got = names(&body);
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{parameters}");
    }
    // Mistakes are errors Argo CD shows in the ApplicationSet's conditions, never an empty
    // list (which would delete every preview).
    for (parameters, code) in [
        (json!({"kind": "preview"}), 400),
        (json!({"status": 1}), 400),
        (json!({"integration": "no-such-integration"}), 404),
    ] {
        let (status, body) = getparams(&server, Some(PLUGIN_TOKEN), parameters.clone()).await;
        assert_eq!(status, code, "{parameters}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    // An integration without environments in that status is an empty list, not a 404.
    let (status, body) = getparams(
        &server,
        Some(PLUGIN_TOKEN),
        json!({"integration": other, "status": "failed"}),
    )
    .await;
    assert_eq!((status, names(&body).len()), (200, 0), "{body}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_the_plugin_token_opens_it(pool: PgPool) {
    seed(&pool).await;
    let server = plugin_server(&pool).await;
    let (status, body) = getparams(&server, None, json!({})).await;
    assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
    for wrong in [
        "wrong",
        ADMIN_TOKEN,
        "test-plugin",
        "test-plugin-token-and-more",
    ] {
        let (status, body) = getparams(&server, Some(wrong), json!({})).await;
        assert_eq!(
            (status, body),
            (403, json!({"error": "forbidden"})),
            "{wrong:?}"
        );
    }
    // Argo CD sends "Bearer <token>"; nothing else is accepted.
    let response = reqwest::Client::new()
        .post(server.url(PATH))
        .header("Authorization", PLUGIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The plugin token opens nothing of the admin API, and the admin API still works.
    let admin = |token: &str| {
        reqwest::Client::new()
            .get(server.url("/api/v1/integrations"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(admin(PLUGIN_TOKEN).await.unwrap().status(), 401);
    assert_eq!(admin(ADMIN_TOKEN).await.unwrap().status(), 200);
    // A body Argo CD would never send is a 400, after authentication only.
    let response = reqwest::Client::new()
        .post(server.url(PATH))
        .bearer_auth(PLUGIN_TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"relay_argocd_plugin_requests_total{outcome="forbidden"} 4"#),
        "{metrics}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_its_token_the_endpoint_is_off(pool: PgPool) {
    seed(&pool).await;
    let server = TestServer::start(pool.clone()).await;
    for token in [None, Some(ADMIN_TOKEN), Some(PLUGIN_TOKEN)] {
        let (status, body) = getparams(&server, token, json!({})).await;
        assert_eq!(status, 404, "{token:?}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("RELAY_ARGOCD_PLUGIN_TOKEN"), "{message}");
        assert!(body.get("output").is_none());
    }
}
