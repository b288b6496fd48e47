//! The admin API and `/metrics` under adverse conditions: a missing or vanished database,
//! odd spellings of the bearer scheme, an optional metrics token.

use std::time::Duration;

use relay::app::Application;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::support::proxy::DbProxy;
use crate::support::*;

async fn get(url: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

fn assert_unavailable(response: &reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_bearer_scheme_is_case_insensitive(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let url = server.url("/api/v1/integrations");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = get(&url, Some(&format!("{scheme} {ADMIN_TOKEN}"))).await;
        assert_eq!(response.status(), 200, "{scheme}");
    }
    for wrong in [
        format!("Basic {ADMIN_TOKEN}"),
        format!("Bearer{ADMIN_TOKEN}"),
        "Bearer ".to_owned(),
    ] {
        assert_eq!(get(&url, Some(&wrong)).await.status(), 401, "{wrong}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn metrics_ask_for_their_token_when_one_is_set(pool: PgPool) {
    let open = TestServer::start(pool.clone()).await;
    assert_eq!(get(&open.url("/metrics"), None).await.status(), 200);
    drop(open);
    let config = test_config(&[("RELAY_METRICS_TOKEN", "metrics-secret")]);
    let server = TestServer::start_config(pool.clone(), config).await;
    let url = server.url("/metrics");
    assert_eq!(get(&url, None).await.status(), 401);
    assert_eq!(get(&url, Some("Bearer wrong")).await.status(), 401);
    // The admin token is not the metrics token.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(get(&url, Some(&admin)).await.status(), 401);
    let response = get(&url, Some("bearer metrics-secret")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("relay_"));
    // Health and readiness stay open for probes.
    assert_eq!(get(&server.url("/healthz"), None).await.status(), 200);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_missing_database_is_503_with_retry_after(pool: PgPool) {
    let mut url = url::Url::parse(&database_url(&pool)).unwrap();
    url.set_path("relay_no_such_database");
    let missing = relay_store::connect(url.as_str(), &relay_store::PoolOptions::default()).unwrap();
    let direct = relay_store::integrations::list(&missing).await.unwrap_err();
    assert!(direct.is_unavailable(), "{direct}");
    let app = Application::build_with_pool(test_config(&[]), missing)
        .await
        .unwrap();
    let addr = app.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for path in ["/api/v1/integrations", "/api/v1/deliveries"] {
        let response = get(&format!("http://{addr}{path}"), Some(&bearer)).await;
        assert_unavailable(&response);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("unavailable"));
    }
    // Without the token it is still 401 and nothing else.
    let response = get(&format!("http://{addr}/api/v1/integrations"), None).await;
    assert_eq!(response.status(), 401);
    shutdown.cancel();
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_database_that_goes_away_is_503_with_retry_after(pool: PgPool) {
    let proxy = DbProxy::start(postgres_addr()).await;
    let via_proxy = database_url_via(&pool, Some(proxy.port));
    let proxied = relay_store::connect(
        &via_proxy,
        &relay_store::PoolOptions {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(1),
        },
    )
    .unwrap();
    let server = TestServer::start_config(proxied, test_config(&[])).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let url = server.url("/api/v1/integrations");
    assert_eq!(get(&url, Some(&bearer)).await.status(), 200);
    proxy.down();
    assert_unavailable(&get(&url, Some(&bearer)).await);
    proxy.up();
}
