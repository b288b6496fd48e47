//! Fake Bitbucket plus a client pointed at it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use relay_bitbucket::{
    BitbucketClient, BitbucketConfig, ClientOptions, CloudConfig, RetryPolicy, SecretString,
    ServerConfig,
};
use relay_testkit::{FakeBitbucket, Flavor};

pub(crate) const OWNER_CLOUD: &str = "acme";
pub(crate) const OWNER_SERVER: &str = "PRJ";
pub(crate) const REPO: &str = "widgets";

pub(crate) fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy::fast(),
        ..ClientOptions::default()
    }
}

pub(crate) fn cloud_config(bb: &FakeBitbucket, repo: &str) -> CloudConfig {
    let (key, secret) = bb.consumer();
    CloudConfig::new(&key, SecretString::from(secret), OWNER_CLOUD, repo)
        .with_urls(bb.base_url(), bb.api_url())
}

pub(crate) fn server_config(bb: &FakeBitbucket, repo: &str) -> ServerConfig {
    ServerConfig::new(
        bb.base_url(),
        SecretString::from(bb.server_token()),
        OWNER_SERVER,
        repo,
    )
}

pub(crate) fn owner(bb: &FakeBitbucket) -> &'static str {
    match bb.flavor() {
        Flavor::Cloud => OWNER_CLOUD,
        Flavor::Server => OWNER_SERVER,
    }
}

pub(crate) fn client_for(
    bb: &FakeBitbucket,
    repo: &str,
    options: &ClientOptions,
) -> BitbucketClient {
    let config = match bb.flavor() {
        Flavor::Cloud => BitbucketConfig::Cloud(cloud_config(bb, repo)),
        Flavor::Server => BitbucketConfig::Server(server_config(bb, repo)),
    };
    BitbucketClient::new(config, options).unwrap()
}

/// A fake with `widgets` holding `main` plus `extra` more branches, and a client for it.
pub(crate) async fn seeded(flavor: Flavor, extra: usize) -> (FakeBitbucket, BitbucketClient) {
    let bb = FakeBitbucket::start(flavor).await;
    let owner = owner(&bb);
    bb.create_repo(owner, REPO);
    bb.commit_file(owner, REPO, "main", "README", "hello\n", "init");
    for i in 0..extra {
        bb.commit_file(
            owner,
            REPO,
            &format!("feature-{i}"),
            "f",
            &format!("{i}\n"),
            "work",
        );
    }
    let client = client_for(&bb, REPO, &options());
    (bb, client)
}
