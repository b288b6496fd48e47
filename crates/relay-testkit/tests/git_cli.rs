//! The real `git` CLI against the fake's smart HTTP: clone and push with the right
//! credentials, 401 with wrong ones, on both flavours.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use relay_testkit::{FakeBitbucket, Flavor};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs git asynchronously: the fake serves on this test's runtime.
async fn git(dir: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .await
        .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn header_arg(authorization: &str) -> String {
    format!("http.extraHeader=Authorization: {authorization}")
}

async fn clone_and_push(bb: &FakeBitbucket, owner: &str, authorization: &str) {
    bb.create_repo(owner, "widgets");
    let first = bb.commit_file(owner, "widgets", "main", "README", "hello\n", "init");
    let work = tempfile::tempdir().unwrap();
    let header = header_arg(authorization);
    let url = bb.git_url(owner, "widgets");
    let out = git(work.path(), &["-c", &header, "clone", "-q", &url, "w"]).await;
    assert!(out.ok, "clone failed: {}", out.stderr);
    let wt = work.path().join("w");
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]).await.stdout, first);

    std::fs::write(wt.join("new.txt"), "pushed\n").unwrap();
    assert!(git(&wt, &["add", "."]).await.ok);
    assert!(git(&wt, &["commit", "-q", "-m", "from the CLI"]).await.ok);
    let pushed = git(&wt, &["rev-parse", "HEAD"]).await.stdout;
    let out = git(
        &wt,
        &[
            "-c",
            &header,
            "push",
            "-q",
            "origin",
            "HEAD:main",
            "HEAD:refs/heads/topic",
        ],
    )
    .await;
    assert!(out.ok, "push failed: {}", out.stderr);
    assert_eq!(
        bb.branch_head(owner, "widgets", "main").as_deref(),
        Some(pushed.as_str())
    );
    assert_eq!(
        bb.branch_head(owner, "widgets", "topic").as_deref(),
        Some(pushed.as_str())
    );

    // Protocol v2 fetch of the new state works too.
    let out = git(
        &wt,
        &[
            "-c",
            &header,
            "-c",
            "protocol.version=2",
            "fetch",
            "-q",
            "origin",
        ],
    )
    .await;
    assert!(out.ok, "fetch failed: {}", out.stderr);
}

async fn refused(bb: &FakeBitbucket, owner: &str, authorization: Option<&str>) {
    let work = tempfile::tempdir().unwrap();
    let url = bb.git_url(owner, "widgets");
    let header = authorization.map(header_arg);
    let mut args = vec!["-c", "credential.helper="];
    if let Some(h) = &header {
        args.extend(["-c", h.as_str()]);
    }
    args.extend(["clone", "-q", url.as_str(), "w"]);
    let out = git(work.path(), &args).await;
    assert!(!out.ok, "clone should have been refused");
    assert!(
        // git reports a refused header as 401; with no header at all it wants to prompt.
        out.stderr.contains("401")
            || out.stderr.contains("Authentication failed")
            || out.stderr.contains("could not read Username"),
        "unexpected error: {}",
        out.stderr
    );
    let log = bb.requests_to("/info/refs");
    assert_eq!(log.last().map(|r| r.status), Some(401));
}

#[tokio::test]
async fn cloud_git_over_smart_http() {
    let bb = FakeBitbucket::start(Flavor::Cloud).await;
    let auth = bb.git_authorization();
    assert!(auth.starts_with("Basic "));
    clone_and_push(&bb, "acme", &auth).await;

    refused(&bb, "acme", None).await;
    refused(&bb, "acme", Some("Basic eC10b2tlbi1hdXRoOm5vcGU=")).await; // x-token-auth:nope
                                                                        // A valid token sent the Server way is not what Cloud git accepts.
    let token = bb.issue_token();
    refused(&bb, "acme", Some(&format!("Bearer {token}"))).await;
    // Expired tokens stop working for git as well.
    bb.expire_tokens();
    refused(&bb, "acme", Some(&auth)).await;
}

#[tokio::test]
async fn cloud_git_with_credentials_in_the_url() {
    let bb = FakeBitbucket::start(Flavor::Cloud).await;
    bb.create_repo("acme", "widgets");
    bb.commit_file("acme", "widgets", "main", "README", "hello\n", "init");
    let token = bb.issue_token();
    let url = bb.git_url("acme", "widgets").replacen(
        "http://",
        &format!("http://x-token-auth:{token}@"),
        1,
    );
    let work = tempfile::tempdir().unwrap();
    let out = git(work.path(), &["clone", "-q", &url, "w"]).await;
    assert!(out.ok, "clone failed: {}", out.stderr);
}

#[tokio::test]
async fn server_git_over_smart_http() {
    let bb = FakeBitbucket::start(Flavor::Server).await;
    bb.set_server_token("s3cret-token");
    clone_and_push(&bb, "PRJ", "Bearer s3cret-token").await;
    // Basic with any user name and the token as password is accepted as well.
    let basic = "Basic dXNlcjpzM2NyZXQtdG9rZW4="; // user:s3cret-token
    let work = tempfile::tempdir().unwrap();
    let out = git(
        work.path(),
        &[
            "-c",
            &header_arg(basic),
            "clone",
            "-q",
            &bb.git_url("PRJ", "widgets"),
            "w",
        ],
    )
    .await;
    assert!(out.ok, "basic clone failed: {}", out.stderr);

    refused(&bb, "PRJ", None).await;
    refused(&bb, "PRJ", Some("Bearer wrong")).await;
}

#[tokio::test]
async fn unavailable_and_down_cover_git() {
    let bb = FakeBitbucket::start(Flavor::Server).await;
    bb.create_repo("PRJ", "widgets");
    bb.commit_file("PRJ", "widgets", "main", "README", "x", "init");
    let header = header_arg(&bb.git_authorization());
    let url = bb.git_url("PRJ", "widgets");

    bb.set_unavailable(true);
    let work = tempfile::tempdir().unwrap();
    let out = git(work.path(), &["-c", &header, "clone", "-q", &url, "a"]).await;
    assert!(!out.ok && out.stderr.contains("503"), "{}", out.stderr);
    bb.set_unavailable(false);

    bb.set_down(true).await;
    let out = git(work.path(), &["-c", &header, "clone", "-q", &url, "b"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.to_lowercase().contains("connect"),
        "expected a connection error: {}",
        out.stderr
    );
    bb.set_down(false).await;
    let out = git(work.path(), &["-c", &header, "clone", "-q", &url, "c"]).await;
    assert!(out.ok, "clone after recovery failed: {}", out.stderr);
}
