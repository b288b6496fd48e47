//! Rate limits, server errors, outages and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{client_for, options, seeded, REPO};
use relay_bitbucket::{ClientOptions, Error, RetryPolicy, SecretString, WebhookSpec};
use relay_testkit::Flavor;

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::Server];

fn rest_calls(bb: &relay_testkit::FakeBitbucket, fragment: &str) -> usize {
    bb.requests_to(fragment).len()
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        // Warm the token cache so the fault hits the REST call itself.
        client.access_token().await.unwrap();
        bb.fail_next(1, 429, Some(1));
        let started = Instant::now();
        let repo = client.repository().await.unwrap();
        assert_eq!(repo.default_branch.as_deref(), Some("main"));
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{flavor:?}: Retry-After honoured"
        );
        let statuses: Vec<u16> = bb.requests().iter().map(|r| r.status).collect();
        assert!(statuses.contains(&429), "{statuses:?}");
    }
}

#[tokio::test]
async fn retry_after_beyond_the_cap_fails_fast() {
    let (bb, client) = seeded(Flavor::Server, 0).await;
    bb.fail_next(1, 429, Some(120));
    let started = Instant::now();
    let err = client.list_branches().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match err {
        Error::RateLimited { retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest_calls(&bb, "/branches"), 1);
}

#[tokio::test]
async fn persistent_rate_limit_is_typed() {
    let (bb, client) = seeded(Flavor::Cloud, 0).await;
    client.access_token().await.unwrap();
    bb.fail_next(10, 429, None);
    let err = client.list_branches().await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: None }),
        "{err:?}"
    );
    assert!(err.is_transient());
    // The first try plus three retries.
    assert_eq!(rest_calls(&bb, "/refs/branches"), 4);
}

#[tokio::test]
async fn server_errors_are_retried_then_typed() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        client.access_token().await.unwrap();
        bb.fail_next(2, 503, None);
        client.list_branches().await.unwrap();

        bb.clear_requests();
        bb.fail_next(4, 500, None);
        let err = client.list_branches().await.unwrap_err();
        assert!(
            matches!(err, Error::Server { status: 500 }),
            "{flavor:?}: {err:?}"
        );
        assert_eq!(rest_calls(&bb, "/branches"), 4);
    }
}

#[tokio::test]
async fn webhook_creation_is_not_repeated_after_a_server_error() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        client.access_token().await.unwrap();
        bb.fail_next(1, 500, None);
        let spec = WebhookSpec::relay(
            client.provider(),
            "https://relay.example.com/hook",
            SecretString::from("s".to_owned()),
        );
        let err = client.create_webhook(&spec).await.unwrap_err();
        assert!(matches!(err, Error::Server { status: 500 }), "{err:?}");
        // Bitbucket may have created it before failing: a blind retry could duplicate it.
        assert_eq!(rest_calls(&bb, "ooks"), 1, "{flavor:?}");
        // A 429 never reached the handler, so that one is retried.
        bb.fail_next(1, 429, None);
        client.create_webhook(&spec).await.unwrap();
        assert_eq!(bb.webhooks(common::owner(&bb), REPO).len(), 1);
    }
}

#[tokio::test]
async fn outages_are_network_errors() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        client.repository().await.unwrap();
        bb.set_down(true).await;
        let err = client.repository().await.unwrap_err();
        assert!(matches!(err, Error::Network(_)), "{flavor:?}: {err:?}");
        assert!(err.is_transient());
        // One line says why, not just "error sending request".
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
        bb.set_down(false).await;
        client.repository().await.unwrap();

        bb.set_unavailable(true);
        let err = client.list_branches().await.unwrap_err();
        assert!(matches!(err, Error::Server { status: 503 }), "{err:?}");
        bb.set_unavailable(false);
    }
}

#[tokio::test]
async fn every_request_has_a_timeout() {
    let (bb, _) = seeded(Flavor::Server, 0).await;
    let opts = ClientOptions {
        timeout: Duration::from_millis(200),
        retry: RetryPolicy::none(),
        ..options()
    };
    let client = client_for(&bb, REPO, &opts);
    bb.set_latency(Duration::from_secs(3));
    let started = Instant::now();
    let err = client.repository().await.unwrap_err();
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
