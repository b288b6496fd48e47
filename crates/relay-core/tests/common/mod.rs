//! Shared helpers for relay-core's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use relay_core::{
    CommitHash, Environment, EnvironmentKind, EnvironmentStatus, Event, PrState, PullRequestInfo,
    Settings,
};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

/// One fixture body with the `X-Event-Key` Bitbucket would send with it.
#[derive(Clone)]
pub struct Fixture {
    /// `bitbucket-cloud/push.json`
    pub name: String,
    pub event_key: String,
    pub body: Vec<u8>,
}

/// Every `*.json` under the fixtures directory, sorted, with its event key: Cloud files are
/// named by event, Server files carry `eventKey`.
pub fn all_fixtures() -> Vec<Fixture> {
    static CACHE: std::sync::OnceLock<Vec<Fixture>> = std::sync::OnceLock::new();
    CACHE.get_or_init(load_fixtures).clone()
}

fn load_fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for dir in ["bitbucket-cloud", "bitbucket-server"] {
        let path = Path::new(FIXTURES).join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let body = std::fs::read(&file).unwrap();
            let stem = file.file_stem().unwrap().to_str().unwrap().to_owned();
            let event_key = if dir == "bitbucket-cloud" {
                cloud_key(&stem).to_owned()
            } else {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                v["eventKey"].as_str().unwrap().to_owned()
            };
            out.push(Fixture {
                name: format!("{dir}/{stem}.json"),
                event_key,
                body,
            });
        }
    }
    assert!(out.len() >= 20, "fixtures not found under {FIXTURES}");
    out
}

fn cloud_key(stem: &str) -> &'static str {
    match stem {
        s if s.starts_with("push") => "repo:push",
        "pr_created" => "pullrequest:created",
        "pr_updated" => "pullrequest:updated",
        "pr_fulfilled" => "pullrequest:fulfilled",
        "pr_declined" => "pullrequest:rejected",
        "pr_comment_created" => "pullrequest:comment_created",
        "pr_comment_deleted" => "pullrequest:comment_deleted",
        other => panic!("no event key known for Cloud fixture {other}"),
    }
}

pub fn fixture_event(name: &str) -> Event {
    let f = all_fixtures().into_iter().find(|f| f.name == name).unwrap();
    relay_core::parse(&f.event_key, &f.body).unwrap()
}

pub fn hash(s: &str) -> CommitHash {
    CommitHash::parse(s).unwrap()
}

/// A 40-hex id derived from a small number, for readable tests.
pub fn commit(n: u32) -> CommitHash {
    hash(&format!("{:040x}", u64::from(n) + 1))
}

/// fetch × prune × build PRs × post-merge, other settings at their defaults, default branch
/// `master` (the fixtures' default).
pub fn option_matrix() -> Vec<Settings> {
    let mut out = Vec::new();
    for bits in 0..16u8 {
        out.push(Settings {
            fetch_branches: bits & 1 != 0,
            prune_branches: bits & 2 != 0,
            build_pull_requests: bits & 4 != 0,
            build_pull_requests_post_merge: bits & 8 != 0,
            default_branch: Some("master".into()),
            ..Settings::default()
        });
    }
    out
}

pub fn branch_env(
    name: &str,
    branch: &str,
    status: EnvironmentStatus,
    head: Option<CommitHash>,
) -> Environment {
    Environment {
        name: name.into(),
        kind: if branch == "master" {
            EnvironmentKind::Production
        } else {
            EnvironmentKind::Branch
        },
        parent: (branch != "master").then(|| "master".into()),
        status,
        branch: Some(branch.into()),
        head_commit: head,
        pr: None,
    }
}

pub fn pr_env(
    id: u64,
    source: &str,
    target: &str,
    head: CommitHash,
    status: EnvironmentStatus,
    state: PrState,
    updated_at_ms: Option<i64>,
) -> Environment {
    Environment {
        name: format!("pr-{id}"),
        kind: EnvironmentKind::PullRequest,
        parent: Some(target.into()),
        status,
        branch: None,
        head_commit: Some(head),
        pr: Some(PullRequestInfo {
            id,
            source_branch: source.into(),
            source_repository: "brydzewski/foo".into(),
            target_branch: target.into(),
            target_commit: None,
            state,
            updated_at_ms,
        }),
    }
}
