//! Credentials: Cloud token caching and refresh, typed 401/403/404, git credentials, and
//! secrets kept out of Debug output and error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{client_for, cloud_config, options, owner, seeded, server_config, REPO};
use relay_bitbucket::{BitbucketClient, BitbucketConfig, Error, SecretString};
use relay_testkit::Flavor;

#[tokio::test]
async fn cloud_token_is_cached() {
    let (bb, client) = seeded(Flavor::Cloud, 3).await;
    client.list_branches().await.unwrap();
    client.repository().await.unwrap();
    client.list_open_pull_requests().await.unwrap();
    client.access_token().await.unwrap();
    assert_eq!(bb.token_requests(), 1);
    // Every REST call carried it as Bearer, on the API host.
    let rest: Vec<_> = bb
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/2.0/"))
        .collect();
    assert!(rest.len() >= 3);
    assert!(rest.iter().all(|r| r.role == relay_testkit::Role::Api));
    assert!(rest.iter().all(|r| r
        .authorization
        .as_deref()
        .unwrap_or("")
        .starts_with("Bearer ")));
    let token_call = bb.requests_to("/site/oauth2/access_token");
    assert_eq!(token_call[0].role, relay_testkit::Role::Site);
    assert_eq!(token_call[0].method, "POST");
}

#[tokio::test]
async fn cloud_token_refreshes_after_expiry() {
    let (bb, client) = seeded(Flavor::Cloud, 1).await;
    client.list_branches().await.unwrap();
    bb.expire_tokens();
    // The cached token now gets 401; the client fetches a new one once and succeeds.
    let branches = client.list_branches().await.unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!(bb.token_requests(), 2);
    assert!(bb.requests().iter().any(|r| r.status == 401));
}

#[tokio::test]
async fn cloud_token_refreshes_before_expiry() {
    let (bb, client) = seeded(Flavor::Cloud, 0).await;
    bb.set_token_lifetime(1);
    client.repository().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.repository().await.unwrap();
    assert_eq!(bb.token_requests(), 2);
    assert!(
        bb.requests().iter().all(|r| r.status != 401),
        "refreshed ahead of expiry, not after a 401"
    );
}

#[tokio::test]
async fn wrong_consumer_is_unauthorized() {
    let (bb, _) = seeded(Flavor::Cloud, 0).await;
    let mut config = cloud_config(&bb, REPO);
    config.secret = SecretString::from("not-the-secret".to_owned());
    let client = BitbucketClient::new(BitbucketConfig::Cloud(config), &options()).unwrap();
    let err = client.list_branches().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn wrong_server_token_is_unauthorized() {
    let (bb, _) = seeded(Flavor::Server, 0).await;
    let mut config = server_config(&bb, REPO);
    config.token = SecretString::from("wrong-token".to_owned());
    let client = BitbucketClient::new(BitbucketConfig::Server(config), &options()).unwrap();
    let err = client.repository().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.status(), Some(401));
    let msg = format!("{err} {err:?} {client:?}");
    assert!(!msg.contains("wrong-token"), "{msg}");
    assert_eq!(
        bb.requests()[0].authorization.as_deref(),
        Some("Bearer wrong-token"),
        "Server tokens go as Bearer"
    );
}

#[tokio::test]
async fn missing_repository_is_not_found() {
    for flavor in [Flavor::Cloud, Flavor::Server] {
        let (bb, _) = seeded(flavor, 0).await;
        let client = client_for(&bb, "nope", &options());
        let err = client.repository().await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{flavor:?}: {err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}

#[tokio::test]
async fn no_webhook_admin_is_forbidden() {
    for flavor in [Flavor::Cloud, Flavor::Server] {
        let (bb, client) = seeded(flavor, 0).await;
        bb.set_webhook_admin(false);
        // Reading still works; webhooks do not.
        client.list_branches().await.unwrap();
        let err = client.list_webhooks().await.unwrap_err();
        assert!(
            matches!(err, Error::Forbidden { .. }),
            "{flavor:?}: {err:?}"
        );
        assert_eq!(err.status(), Some(403));
    }
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let (bb, cloud) = seeded(Flavor::Cloud, 0).await;
    let (_, secret) = bb.consumer();
    let token = cloud.access_token().await.unwrap();
    let header = cloud.git_auth_header().await.unwrap();
    let config = cloud_config(&bb, REPO);
    let text = format!("{cloud:?} {config:?} {token:?} {header:?}");
    assert!(!text.contains(&secret), "{text}");
    use secrecy::ExposeSecret;
    assert!(!text.contains(token.expose_secret()), "{text}");

    let (sb, server) = seeded(Flavor::Server, 0).await;
    let text = format!("{server:?} {:?}", server_config(&sb, REPO));
    assert!(!text.contains(&sb.server_token()), "{text}");
}

/// The git URL and Authorization header the client hands out work with the git CLI.
#[tokio::test]
async fn git_credentials_work_with_git() {
    use secrecy::ExposeSecret;
    for flavor in [Flavor::Cloud, Flavor::Server] {
        let (bb, client) = seeded(flavor, 1).await;
        let url = client.git_url().unwrap();
        assert_eq!(url.as_str(), bb.git_url(owner(&bb), REPO));
        let header = client.git_auth_header().await.unwrap();
        let expected_scheme = if flavor == Flavor::Cloud {
            "Basic "
        } else {
            "Bearer "
        };
        assert!(header.expose_secret().starts_with(expected_scheme));
        let out = tokio::process::Command::new("git")
            .arg("-c")
            .arg(format!(
                "http.extraHeader=Authorization: {}",
                header.expose_secret()
            ))
            .args(["ls-remote", url.as_str()])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{flavor:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let head = bb.branch_head(owner(&bb), REPO, "feature-0").unwrap();
        assert!(
            stdout.contains(&format!("{head}\trefs/heads/feature-0")),
            "{stdout}"
        );
    }
}
