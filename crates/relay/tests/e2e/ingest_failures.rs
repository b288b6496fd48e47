//! Everything a client can get wrong, and the database going away: clear 4xx/503 answers,
//! never a 500, and nothing half-written.

use std::time::Duration;

use relay_core::IntegrationType;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::support::proxy::DbProxy;
use crate::support::*;

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_integrations_are_404(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let body = br#"{"push": {"changes": []}}"#;
    for id in ["doesnotexist", "UPPER", "has%20space", "a.b"] {
        let response = post_delivery(
            &server.hook_url(id),
            IntegrationType::Cloud,
            "repo:push",
            "r1",
            body,
            Some(sign("x", body)),
        )
        .await;
        assert_eq!(response.status(), 404, "{id}");
    }
    assert_eq!(delivery_count(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn malformed_bodies_and_headers_are_400(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let url = server.hook_url(&cloud.id);
    let client = reqwest::Client::new();

    for body in [
        &b"{not json"[..],
        b"",
        b"\xff\xfe\x00",
        b"{\"a\": 1} trailing",
    ] {
        let response = post_delivery(
            &url,
            IntegrationType::Cloud,
            "repo:push",
            "m1",
            body,
            Some(sign(&cloud.webhook_secret, body)),
        )
        .await;
        assert_eq!(response.status(), 400, "{body:?}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains("JSON"),
            "{answer}"
        );
    }

    let body = b"{}";
    let signature = sign(&cloud.webhook_secret, body);
    let no_event = client
        .post(&url)
        .header("X-Hub-Signature", &signature)
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(no_event.status(), 400);
    for bad_key in ["", "repo push", "x\u{7f}", &"k".repeat(101)] {
        let response = client
            .post(&url)
            .header("X-Event-Key", bad_key)
            .header("X-Hub-Signature", &signature)
            .body(&body[..])
            .send()
            .await;
        // reqwest itself refuses some header values; those never reach the relay.
        if let Ok(response) = response {
            assert_eq!(response.status(), 400, "{bad_key:?}");
        }
    }
    let bad_request_id = client
        .post(&url)
        .header("X-Event-Key", "repo:push")
        .header("X-Request-UUID", "a b")
        .header("X-Hub-Signature", &signature)
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_request_id.status(), 400);
    let non_utf8_header = client
        .post(&url)
        .header(
            "X-Event-Key",
            reqwest::header::HeaderValue::from_bytes(b"repo:\xe9").unwrap(),
        )
        .header("X-Hub-Signature", &signature)
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(non_utf8_header.status(), 400);
    let sha1 = post_delivery(
        &url,
        IntegrationType::Cloud,
        "repo:push",
        "s1",
        body,
        Some("sha1=0123456789abcdef0123456789abcdef01234567".into()),
    )
    .await;
    assert_eq!(sha1.status(), 401);
    assert_eq!(delivery_count(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn oversized_bodies_are_413(pool: PgPool) {
    let server = TestServer::start_with(pool.clone(), 4096).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let url = server.hook_url(&cloud.id);
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(5000)).into_bytes();
    let response = post_delivery(
        &url,
        IntegrationType::Cloud,
        "repo:push",
        "big",
        &big,
        Some(sign(&cloud.webhook_secret, &big)),
    )
    .await;
    assert_eq!(response.status(), 413);

    // Without a Content-Length the limit still holds (chunked body).
    let stream = futures_stream(big.clone());
    let response = reqwest::Client::new()
        .post(&url)
        .header("X-Event-Key", "repo:push")
        .header("X-Hub-Signature", sign(&cloud.webhook_secret, &big))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(delivery_count(&pool).await, 0);

    let small = br#"{"push": {"changes": []}}"#;
    let response = post_delivery(
        &url,
        IntegrationType::Cloud,
        "repo:push",
        "small",
        small,
        Some(sign(&cloud.webhook_secret, small)),
    )
    .await;
    assert_eq!(response.status(), 202);
}

fn futures_stream(
    body: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

/// A proxy in front of PostgreSQL and a small pool that reaches the test database through it,
/// impatient enough (1 s) that an outage shows at once.
async fn proxied_pool(pool: &PgPool) -> (DbProxy, PgPool) {
    let proxy = DbProxy::start(postgres_addr()).await;
    let proxied = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect(&database_url_via(pool, Some(proxy.port)))
        .await
        .unwrap();
    (proxy, proxied)
}

#[sqlx::test(migrations = "../../migrations")]
async fn database_down_is_503_and_nothing_is_half_written(pool: PgPool) {
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let (proxy, proxied) = proxied_pool(&pool).await;
    let server = TestServer::start(proxied).await;
    let url = server.hook_url(&cloud.id);
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let signature = sign(&cloud.webhook_secret, &body);

    let before = post_delivery(
        &url,
        IntegrationType::Cloud,
        "repo:push",
        "before",
        &body,
        Some(signature.clone()),
    )
    .await;
    assert_eq!(before.status(), 202);

    proxy.down();
    for n in 0..3 {
        let response = post_delivery(
            &url,
            IntegrationType::Cloud,
            "repo:push",
            &format!("down-{n}"),
            &body,
            Some(signature.clone()),
        )
        .await;
        assert_eq!(response.status(), 503, "while the database is down");
        assert!(response.headers().contains_key("retry-after"));
    }
    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "the process itself is fine");

    proxy.up();
    // Recovers without a restart; Bitbucket's retry of a refused delivery is then stored.
    let mut status = 0;
    for _ in 0..50 {
        status = post_delivery(
            &url,
            IntegrationType::Cloud,
            "repo:push",
            "down-0",
            &body,
            Some(signature.clone()),
        )
        .await
        .status()
        .as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 202);
    let stored: Vec<String> = sqlx::query_scalar("SELECT request_id FROM deliveries ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        ["before", "down-0"],
        "only acknowledged deliveries exist"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn before_migrations_webhooks_answer_503(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    server
        .state
        .schema_ready
        .store(false, std::sync::atomic::Ordering::Release);
    let body = b"{}";
    let response = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "repo:push",
        "r",
        body,
        Some(sign(&cloud.webhook_secret, body)),
    )
    .await;
    assert_eq!(response.status(), 503);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_wrong_secret_key_is_503_not_a_crash(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    // Simulate a relay started with another RELAY_SECRET_KEY: the stored ciphertext no longer opens.
    sqlx::query("UPDATE integrations SET webhook_secret_ciphertext = '\\x01'")
        .execute(&pool)
        .await
        .unwrap();
    let body = b"{}";
    let response = post_delivery(
        &server.hook_url(&cloud.id),
        IntegrationType::Cloud,
        "repo:push",
        "r",
        body,
        Some(sign(&cloud.webhook_secret, body)),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(delivery_count(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_sender_that_trickles_is_cut_off(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        TestServer::start_custom(pool.clone(), 256 * 1024, Duration::from_millis(500)).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /webhooks/bitbucket/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nX-Event-Key: repo:push\r\nX-Hub-Signature: sha256=00\r\n\r\n{{",
        cloud.id
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the relay must not wait forever");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(delivery_count(&pool).await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn content_types_and_odd_headers_never_cause_a_500(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let url = server.hook_url(&cloud.id);
    let client = reqwest::Client::new();
    let json = br#"{"push": {"changes": []}}"#;
    // Bitbucket always sends JSON; the relay judges the body, not the label.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=utf-16",
    ] {
        let response = client
            .post(&url)
            .header("content-type", content_type)
            .header("x-event-key", "repo:push")
            .header(
                "x-request-uuid",
                format!("ct-{content_type}").replace([' ', ';', '=', '/'], "-"),
            )
            .header("x-hub-signature", sign(&cloud.webhook_secret, json))
            .body(&json[..])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{content_type}");
    }
    let form = b"a=1&b=2";
    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-event-key", "repo:push")
        .header("x-hub-signature", sign(&cloud.webhook_secret, form))
        .body(&form[..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Header values that try to smuggle: control characters and oversized ids are refused.
    for (name, value) in [
        ("x-request-uuid", "a\tb"),
        ("x-request-uuid", &"x".repeat(300)[..]),
        ("x-event-key", "../../etc"),
    ] {
        let response = client
            .post(&url)
            .header(
                "x-event-key",
                if name == "x-event-key" {
                    value
                } else {
                    "repo:push"
                },
            )
            .header(name, value)
            .header("x-hub-signature", sign(&cloud.webhook_secret, json))
            .body(&json[..])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}: {value:?}");
    }
}

/// A database connection that goes silent (no FIN, no RST) must not hold webhooks for
/// minutes: the writer's batch times out and is answered `Unavailable` (a 503 Bitbucket
/// retries), the writer drops the connection, and ingest resumes on a fresh one.
#[sqlx::test(migrations = "../../migrations")]
async fn a_silent_database_connection_times_out_then_ingest_recovers(pool: PgPool) {
    use relay::http::ingest::{GroupCommit, Ingestor};
    use relay_store::deliveries::{InsertError, InsertOutcome};
    let cloud = add_integration(&pool, IntegrationType::Cloud).await;
    let (proxy, proxied) = proxied_pool(&pool).await;
    // One writer, so the stalled request meets the connection the first one left it.
    let metrics = std::sync::Arc::new(relay::metrics::Metrics::new());
    let ingestor = Ingestor::start(
        proxied,
        metrics.clone(),
        GroupCommit {
            writers: 1,
            max_batch: 16,
            overlap_rows: 16,
            batch_timeout: Duration::from_secs(2),
        },
    );
    let delivery = |id: &str| push_delivery(&cloud.id, id);
    assert!(matches!(
        ingestor.store(delivery("before")).await,
        Ok(InsertOutcome::Stored(_))
    ));

    proxy.stall();
    let started = std::time::Instant::now();
    assert_eq!(
        ingestor.store(delivery("stalled")).await,
        Err(InsertError::Unavailable)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "answered after {waited:?}"
    );

    let mut outcome = Err(InsertError::Unavailable);
    for n in 0..40 {
        outcome = ingestor.store(delivery(&format!("after-{n}"))).await;
        if outcome.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        matches!(outcome, Ok(InsertOutcome::Stored(_))),
        "ingest resumes on a fresh connection: {outcome:?}"
    );
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE request_id = 'stalled'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored, 0,
        "the stalled statement never reached the database"
    );
    // The timed-out statement is in the group-commit metrics with the time it was given.
    let text = metrics.render();
    let sum = |name: &str| metric_value(&text, name);
    assert!(
        sum("relay_ingest_batch_duration_seconds_sum") >= 1.9,
        "{text}"
    );
    assert!(sum("relay_ingest_batch_rows_count") >= 3.0, "{text}");
}
