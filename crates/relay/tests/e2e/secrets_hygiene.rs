//! `relay serve` as a process: structured logs with the right fields, no secret anywhere in
//! logs or output, graceful shutdown that finishes the request in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::serve::ServeProcess;
use crate::support::*;

fn raw_post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[sqlx::test(migrations = "../../migrations")]
async fn logs_carry_fields_and_never_secrets(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&[]);
    let id = created["id"].as_str().unwrap().to_owned();
    let webhook_secret = created["webhook_secret"].as_str().unwrap().to_owned();

    let get_output =
        relay.ok(&["integration:get", &id]) + &relay.ok(&["integration:list", "--format", "json"]);
    for secret in [webhook_secret.as_str(), "consumer-secret-value", TEST_KEY] {
        assert!(!get_output.contains(secret), "secret in get/list output");
    }

    let serve = ServeProcess::start(&relay);
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let signature = sign(&webhook_secret, &body);
    let path = format!("/webhooks/bitbucket/{id}");
    let ok = raw_post(
        &serve.addr,
        &path,
        &[
            ("X-Event-Key", "repo:push".into()),
            ("X-Request-UUID", "log-1".into()),
            ("X-Hub-Signature", signature.clone()),
        ],
        &body,
    );
    assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
    let bad = raw_post(
        &serve.addr,
        &path,
        &[
            ("X-Event-Key", "repo:push".into()),
            ("X-Request-UUID", "log-2".into()),
            ("X-Hub-Signature", sign("guess", &body)),
        ],
        &body,
    );
    assert!(bad.starts_with("HTTP/1.1 401"), "{bad}");

    let (status, logs) = serve.terminate();
    assert!(
        status.success(),
        "serve exits cleanly on SIGTERM: {status:?}\n{logs}"
    );
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(!lines.is_empty(), "JSON log lines expected:\n{logs}");
    let stored = lines
        .iter()
        .find(|l| l["message"] == "delivery stored")
        .unwrap_or_else(|| panic!("no 'delivery stored' line in:\n{logs}"));
    let span = &stored["span"];
    assert_eq!(span["integration.id"], id.as_str(), "{stored}");
    assert_eq!(span["event.key"], "repo:push", "{stored}");
    assert!(stored["delivery.id"].is_number(), "{stored}");
    assert_eq!(stored["request.id"], "log-1", "{stored}");
    assert!(
        lines.iter().any(|l| l["outcome"] == "bad_signature"),
        "{logs}"
    );
    for secret in [
        webhook_secret.as_str(),
        "consumer-secret-value",
        TEST_KEY,
        &signature[7..],
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn sigterm_finishes_the_request_in_flight(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&[]);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["webhook_secret"].as_str().unwrap().to_owned();
    let serve = ServeProcess::start(&relay);
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();

    // Send the headers and half the body, then ask the relay to stop, then send the rest.
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    let head = format!(
        "POST /webhooks/bitbucket/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nX-Event-Key: repo:push\r\nX-Request-UUID: inflight\r\nX-Hub-Signature: {}\r\n\r\n",
        body.len(),
        sign(&secret, &body)
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    serve.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");

    let (status, logs) = serve.terminate();
    assert!(status.success(), "{logs}");
    assert_eq!(delivery_count(&pool).await, 1);
}

/// Log lines reach stderr while the relay runs, not only when it exits: `telemetry` gathers
/// them in a buffer that a thread of its own writes out every 50 ms.
#[sqlx::test(migrations = "../../migrations")]
async fn log_lines_are_written_as_they_happen(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&[]);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["webhook_secret"].as_str().unwrap().to_owned();
    let mut serve = ServeProcess::start(&relay);
    let logs = serve.follow_logs();
    let body = std::fs::read(fixtures_dir().join("bitbucket-cloud/push.json")).unwrap();
    let ok = raw_post(
        &serve.addr,
        &format!("/webhooks/bitbucket/{id}"),
        &[
            ("X-Event-Key", "repo:push".into()),
            ("X-Request-UUID", "live-1".into()),
            ("X-Hub-Signature", sign(&secret, &body)),
        ],
        &body,
    );
    assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
    let line = logs
        .wait_for(|line| line.contains("delivery stored") && line.contains("live-1"))
        .unwrap_or_else(|seen| panic!("no 'delivery stored' line while running:\n{seen}"));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(line["delivery.id"].is_number(), "{line}");
    serve.sigterm();
}
