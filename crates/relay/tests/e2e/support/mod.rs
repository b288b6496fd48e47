//! Shared test helpers: start a server, create integrations, sign fixture bodies.

pub(crate) mod git_http;
pub(crate) mod proxy;
pub(crate) mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use relay::admin::integrations::{self, IntegrationInput};
use relay::app::Application;
use relay::config::Config;
use relay::http::AppState;
use relay::secrets::SecretKey;
use relay_core::IntegrationType;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token";
pub(crate) const TEST_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub(crate) fn key() -> SecretKey {
    SecretKey::parse(&SecretString::from(TEST_KEY)).unwrap()
}

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
}

impl TestServer {
    pub(crate) async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, 256 * 1024).await
    }

    pub(crate) async fn start_with(pool: PgPool, max_body_bytes: usize) -> Self {
        Self::start_custom(pool, max_body_bytes, Duration::from_secs(5)).await
    }

    pub(crate) async fn start_custom(
        pool: PgPool,
        max_body_bytes: usize,
        request_timeout: Duration,
    ) -> Self {
        let mut config = test_config(&[]);
        config.max_body_bytes = max_body_bytes;
        config.request_timeout = request_timeout;
        Self::start_config(pool, config).await
    }

    /// The real start-up (`Application::build` and `run`, as `relay serve` does) on the
    /// test's database; returns once the schema is ready.
    pub(crate) async fn start_config(pool: PgPool, config: Config) -> Self {
        let app = Application::build_with_pool(config, pool).await.unwrap();
        let addr = app.local_addr().unwrap();
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        for _ in 0..200 {
            if state.schema_ready() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(state.schema_ready(), "the test server did not get ready");
        Self {
            addr,
            state,
            shutdown,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn hook_url(&self, integration: &str) -> String {
        self.url(&format!("/webhooks/bitbucket/{integration}"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) struct TestIntegration {
    pub id: String,
    pub webhook_secret: String,
}

pub(crate) async fn add_integration(pool: &PgPool, kind: IntegrationType) -> TestIntegration {
    let input = match kind {
        IntegrationType::Cloud => IntegrationInput {
            kind: Some(kind),
            repository: Some("brydzewski/foo".into()),
            key: Some("consumer-key".into()),
            secret: Some("consumer-secret-value".into()),
            ..Default::default()
        },
        IntegrationType::Server => IntegrationInput {
            kind: Some(kind),
            repository: Some("PRJ/my-repo".into()),
            base_url: Some("https://bitbucket.example.com".into()),
            token: Some("server-token-value".into()),
            ..Default::default()
        },
    };
    let created = integrations::add(pool, &key(), input).await.unwrap();
    TestIntegration {
        id: created.record.id,
        webhook_secret: created.webhook_secret,
    }
}

/// The repository's `fixtures/` directory.
pub(crate) fn fixtures_dir() -> PathBuf {
    relay_fixtures::dir()
}

/// A fixture body with the event key Bitbucket would send with it.
pub(crate) struct Fixture {
    /// `bitbucket-cloud/push.json`
    pub name: String,
    pub kind: IntegrationType,
    pub event_key: String,
    pub body: Vec<u8>,
}

/// Every fixture, Cloud then Server, sorted (see `relay_fixtures::TABLE`).
pub(crate) fn fixtures() -> Vec<Fixture> {
    relay_fixtures::load_all()
        .unwrap()
        .into_iter()
        .map(|f| Fixture {
            name: f.name,
            kind: match f.product {
                relay_fixtures::Product::Cloud => IntegrationType::Cloud,
                relay_fixtures::Product::Server => IntegrationType::Server,
            },
            event_key: f.event_key.to_owned(),
            body: f.body,
        })
        .collect()
}

pub(crate) fn request_id_header(kind: IntegrationType) -> &'static str {
    match kind {
        IntegrationType::Cloud => "X-Request-UUID",
        IntegrationType::Server => "X-Request-Id",
    }
}

/// POSTs `body` as Bitbucket would, signed when `signature` is given.
pub(crate) async fn post_delivery(
    url: &str,
    kind: IntegrationType,
    event_key: &str,
    request_id: &str,
    body: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Event-Key", event_key)
        .header(request_id_header(kind), request_id)
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature", signature);
    }
    request.send().await.unwrap()
}

pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    relay_core::sign(secret.as_bytes(), body)
}

/// Polls every 50 ms until no delivery is pending or `limit` has passed; returns how many
/// still are.
pub(crate) async fn wait_for_no_pending(pool: &PgPool, limit: std::time::Duration) -> i64 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
                .fetch_one(pool)
                .await
                .unwrap();
        if pending == 0 || std::time::Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts a processor with `config` on its own task and gives its LISTEN connection time to
/// connect; cancel the token and await the handle to stop it.
pub(crate) async fn start_processor(
    pool: &PgPool,
    config: relay::worker::ProcessorConfig,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let metrics = std::sync::Arc::new(relay::metrics::Metrics::new());
    let processor = relay::worker::Processor::new(pool.clone(), metrics, config);
    let token = CancellationToken::new();
    let running = tokio::spawn(processor.run(token.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    (token, running)
}

/// The value of the unlabelled sample `name` in Prometheus text `metrics`.
pub(crate) fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {metrics}"))
}

/// Stores the real Cloud push fixture once for each `(integration id, request id)` in one
/// statement, as ingest's group commit does (a request id seen before is skipped).
pub(crate) async fn insert_pushes(pool: &PgPool, rows: &[(&str, &str)]) {
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let integrations: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let request_ids: Vec<&str> = rows.iter().map(|r| r.1).collect();
    sqlx::query(
        "INSERT INTO deliveries (integration_id, request_id, event_key, body)
         SELECT i, r, 'repo:push', $3 FROM UNNEST($1::text[], $2::text[]) AS t(i, r)
         ON CONFLICT (integration_id, request_id) WHERE request_id IS NOT NULL DO NOTHING",
    )
    .bind(&integrations)
    .bind(&request_ids)
    .bind(&body)
    .execute(pool)
    .await
    .unwrap();
}

/// A minimal `repo:push` delivery of `integration_id`, for tests that store rows directly.
pub(crate) fn push_delivery(
    integration_id: &str,
    request_id: &str,
) -> relay_store::deliveries::NewDelivery {
    relay_store::deliveries::NewDelivery {
        integration_id: integration_id.to_owned(),
        request_id: Some(request_id.to_owned()),
        event_key: "repo:push".into(),
        headers: serde_json::json!({}),
        body: bytes::Bytes::from_static(b"{}"),
    }
}

pub(crate) async fn delivery_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The URL of the database behind `pool`, for subprocesses and proxies.
pub(crate) fn database_url(pool: &PgPool) -> String {
    database_url_via(pool, None)
}

/// Same, but reaching PostgreSQL through `port` (a proxy) when given.
pub(crate) fn database_url_via(pool: &PgPool, port: Option<u16>) -> String {
    let options = pool.connect_options();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL must be set for the tests");
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(options.get_database().unwrap_or("postgres"));
    if let Some(port) = port {
        url.set_port(Some(port)).unwrap();
    }
    url.to_string()
}

/// Host and port of the real PostgreSQL, from DATABASE_URL.
pub(crate) fn postgres_addr() -> SocketAddr {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL must be set for the tests");
    let url = url::Url::parse(&base).unwrap();
    let host = match url.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(host) => host,
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

/// Bitbucket Cloud addresses where nothing listens, for tests that must not reach one.
/// The configuration the test server starts with: loopback on a free port, no background
/// workers (tests drive the processor and the runner themselves), Bitbucket nowhere; `env`
/// adds or overrides variables.
pub(crate) fn test_config(env: &[(&str, &str)]) -> Config {
    let mut vars: std::collections::HashMap<String, String> = [
        ("RELAY_LISTEN", "127.0.0.1:0"),
        ("RELAY_ADMIN_TOKEN", ADMIN_TOKEN),
        ("RELAY_SECRET_KEY", TEST_KEY),
        ("RELAY_PUBLIC_URL", "https://relay.example.com"),
        ("RELAY_WORKERS", "0"),
        ("RELAY_JOB_WORKERS", "0"),
        ("RELAY_INGEST_WRITERS", "2"),
        ("RELAY_BITBUCKET_CLOUD_URL", "http://127.0.0.1:9"),
        ("RELAY_BITBUCKET_CLOUD_API_URL", "http://127.0.0.1:9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Config::load_from(None, |name| vars.get(name).cloned()).unwrap()
}

pub(crate) fn nowhere() -> relay::bitbucket::CloudUrls {
    let url = url::Url::parse("http://127.0.0.1:9").unwrap();
    relay::bitbucket::CloudUrls {
        web: url.clone(),
        api: url,
    }
}

/// Every delivery of `claim` finished as processed, committed; returns their ids in order.
pub(crate) async fn finish_as_processed(claim: relay_store::queue::Claim) -> Vec<i64> {
    use relay_store::queue::{Finished, Outcome};
    let ids: Vec<i64> = claim.deliveries.iter().map(|d| d.id).collect();
    let finished: Vec<Finished> = ids
        .iter()
        .map(|&delivery_id| Finished {
            delivery_id,
            outcome: Outcome::Processed,
            decisions: None,
            error: None,
        })
        .collect();
    claim.finish(&finished).await.unwrap();
    ids
}
