//! Slow and greedy clients: heads that never finish, idle keep-alive connections, more
//! connections than the cap, oversized heads, and a half-sent request at shutdown.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::Relay;
use crate::support::serve::ServeProcess;
use crate::support::*;

/// Reads until the relay closes the connection, at most `limit`; returns what was read and
/// how long the relay took, or None when it was still open.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut answer = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some((
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )),
        Err(_) => None,
    }
}

async fn server_with(pool: &PgPool, env: &[(&str, &str)]) -> TestServer {
    TestServer::start_config(pool.clone(), test_config(env)).await
}

#[sqlx::test(migrations = "../../migrations")]
async fn heads_that_never_finish_are_cut_at_the_request_timeout(pool: PgPool) {
    let server = server_with(&pool, &[("RELAY_REQUEST_TIMEOUT_SECS", "1")]).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut partial_line = TcpStream::connect(server.addr).await.unwrap();
    partial_line
        .write_all(b"POST /webhooks/bitbucket/x HTT")
        .await
        .unwrap();
    let mut partial_headers = TcpStream::connect(server.addr).await.unwrap();
    partial_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    for stream in [&mut silent, &mut partial_line, &mut partial_headers] {
        let (_, took) = read_until_closed(stream, Duration::from_secs(5))
            .await
            .expect("the relay must close a connection whose head never arrives");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn idle_keep_alive_connections_are_closed(pool: PgPool) {
    let server = server_with(&pool, &[("RELAY_REQUEST_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let (_, took) = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection must be closed");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn connections_beyond_the_cap_wait_and_are_served_once_slots_free(pool: PgPool) {
    let server = server_with(
        &pool,
        &[
            ("RELAY_REQUEST_TIMEOUT_SECS", "2"),
            ("RELAY_MAX_CONNECTIONS", "4"),
        ],
    )
    .await;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut hog = TcpStream::connect(server.addr).await.unwrap();
        hog.write_all(b"POST /webhooks/bitbucket/x HTTP/1.1\r\n")
            .await
            .unwrap();
        hogs.push(hog);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut valid = TcpStream::connect(server.addr).await.unwrap();
    valid
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut early = [0u8; 64];
    let answered_early =
        tokio::time::timeout(Duration::from_millis(700), valid.read(&mut early)).await;
    assert!(
        answered_early.is_err(),
        "the cap must hold the fifth connection back"
    );
    let (answer, _) = read_until_closed(&mut valid, Duration::from_secs(8))
        .await
        .expect("the waiting connection is served once the slow ones are cut");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[sqlx::test(migrations = "../../migrations")]
async fn oversized_targets_and_headers_get_json_answers(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let client = reqwest::Client::new();
    let long = server.url(&format!("/healthz?{}", "a".repeat(10 * 1024)));
    let response = client.get(&long).send().await.unwrap();
    assert_eq!(response.status(), 414);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "uri_too_long");

    let mut many = client.get(server.url("/healthz"));
    for n in 0..120 {
        many = many.header(format!("x-h-{n}"), "v");
    }
    let response = many.send().await.unwrap();
    assert_eq!(response.status(), 431);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "headers_too_large");

    let response = client
        .get(server.url("/healthz"))
        .header("x-big", "b".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_trickled_body_gets_a_json_408(pool: PgPool) {
    let server =
        TestServer::start_custom(pool.clone(), 256 * 1024, Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /webhooks/bitbucket/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["outcome"], "timeout");
}

/// `relay serve` exits promptly on SIGTERM although a client holds a half-sent request
/// (the request timeout is long, so only the bounded drain can end it).
#[sqlx::test(migrations = "../../migrations")]
async fn sigterm_does_not_wait_for_half_sent_requests(pool: PgPool) {
    let relay = Relay::new(&pool);
    let serve = ServeProcess::start_with(&relay, &[("RELAY_REQUEST_TIMEOUT_SECS", "60")], false);
    let mut half = TcpStream::connect(&serve.addr).await.unwrap();
    half.write_all(b"POST /webhooks/bitbucket/x HTTP/1.1\r\nHost: x\r\nContent-")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, _) = tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
