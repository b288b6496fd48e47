//! The admin API over real HTTP.

use relay_core::IntegrationType;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client().request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_the_token_everything_is_401_and_nothing_else(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    add_integration(&pool, IntegrationType::Cloud).await;
    for path in [
        "/api/v1/integrations",
        "/api/v1/openapi.json",
        "/api/v1/no-such-thing",
        "/api/v1/deliveries/1",
    ] {
        for token in [None, Some("wrong"), Some("")] {
            let (status, body) = call(&server, reqwest::Method::GET, path, token, None).await;
            assert_eq!(status, 401, "{path} {token:?}");
            assert_eq!(body, json!({ "error": "unauthorized" }));
        }
    }
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/api/v1/integrations",
        None,
        Some(json!({"type": "bitbucket"})),
    )
    .await;
    assert_eq!(status, 401);
    let basic = client()
        .get(server.url("/api/v1/integrations"))
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}

#[sqlx::test(migrations = "../../migrations")]
async fn integrations_crud_with_the_cli_rules(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let token = Some(ADMIN_TOKEN);
    let (status, created) = call(
        &server,
        reqwest::Method::POST,
        "/api/v1/integrations",
        token,
        Some(json!({
            "type": "bitbucket", "repository": "ws/app", "key": "k", "secret": "consumer-secret",
            "fetch_branches": false, "prune_branches": true, "register_webhook": false
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["integration"]["id"].as_str().unwrap().to_owned();
    assert!(created["webhook_secret"].as_str().unwrap().len() >= 32);
    assert_eq!(
        created["integration"]["prune_branches"], false,
        "forced off without fetch"
    );
    assert_eq!(created["integration"]["secret"], "set");
    assert!(!created.to_string().contains("consumer-secret"));

    let (status, view) = call(
        &server,
        reqwest::Method::GET,
        &format!("/api/v1/integrations/{id}"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        view["hook_url"],
        format!("https://relay.example.com/webhooks/bitbucket/{id}")
    );

    let (status, view) = call(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/v1/integrations/{id}"),
        token,
        Some(json!({"fetch_branches": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["prune_branches"], true);

    for (body, needle) in [
        (json!({"deploy_hook_url": "ftp://x"}), "deploy_hook_url"),
        (json!({"token": "t"}), "token does not apply"),
        (json!({"no_such_field": 1}), "no_such_field"),
        (json!({"type": "bitbucket_server"}), "type cannot change"),
        (json!({"fetch_branches": "yes"}), "fetch_branches"),
    ] {
        let (status, answer) = call(
            &server,
            reqwest::Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body}: {answer}"
        );
    }
    let (status, answer) = call(
        &server,
        reqwest::Method::POST,
        "/api/v1/integrations",
        token,
        Some(json!({"type": "bitbucket", "repository": "ws/x"})),
    )
    .await;
    assert_eq!(status, 422, "{answer}");

    let (status, list) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/integrations",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/v1/integrations/{id}?register_webhook=false"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, answer) = call(
        &server,
        reqwest::Method::GET,
        &format!("/api/v1/integrations/{id}"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 404, "{answer}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn deliveries_environments_and_jobs(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let token = Some(ADMIN_TOKEN);
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/pr_created.json")).unwrap();
    let posted = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "pullrequest:created",
        "a1",
        &body,
        Some(sign(&cloud.webhook_secret, &body)),
    )
    .await;
    let delivery = posted.json::<Value>().await.unwrap()["delivery_id"]
        .as_i64()
        .unwrap();
    let processor = relay::worker::Processor::new(
        pool.clone(),
        server.state.metrics.clone(),
        Default::default(),
    );
    while processor.process_next().await.unwrap() > 0 {}

    let (status, deliveries) = call(
        &server,
        reqwest::Method::GET,
        &format!("/api/v1/deliveries?integration={}", cloud.id),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deliveries[0]["status"], "processed");
    let (_, shown) = call(
        &server,
        reqwest::Method::GET,
        &format!("/api/v1/deliveries/{delivery}"),
        token,
        None,
    )
    .await;
    assert!(
        shown["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "build_pull_request"),
        "{shown}"
    );
    let (status, envs) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/environments",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(envs[0]["name"], "pr-1");
    let (status, jobs) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/jobs?state=pending&limit=10",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(jobs
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["state"] == "pending"));
    let job_id = jobs[0]["id"].as_i64().unwrap();
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/deliveries?status=dead",
        token,
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("`processed`"),
        "the accepted values are listed: {body}"
    );
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/jobs/{job_id}/retry"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/api/v1/jobs/999999/retry",
        token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/deliveries/{delivery}/redeliver"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, answer) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/jobs?limit=0",
        token,
        None,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/jobs?bogus=1",
        token,
        None,
    )
    .await;
    assert_eq!(status, 422);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_openapi_document_describes_every_route(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let (status, doc) = call(
        &server,
        reqwest::Method::GET,
        "/api/v1/openapi.json",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/api/v1/integrations",
        "/api/v1/integrations/{id}",
        "/api/v1/environments",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{id}",
        "/api/v1/deliveries/{id}/redeliver",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}/retry",
        "/api/v1/integrations/{id}/activities",
        "/api/v1/integrations/{id}/activities/{activity_id}",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from the OpenAPI document"
        );
    }
    // Every documented route answers (not 404) with the token.
    for route in paths.keys().filter(|r| !r.contains('{')) {
        let (status, _) = call(
            &server,
            reqwest::Method::GET,
            route,
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{route}");
    }
}
