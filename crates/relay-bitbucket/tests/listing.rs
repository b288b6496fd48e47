//! Branches, default branch, open pull requests and commit resolution, across pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{owner, seeded, REPO};
use relay_testkit::{Flavor, PullRequestSpec};

const FLAVORS: [Flavor; 2] = [Flavor::Cloud, Flavor::Server];

#[tokio::test]
async fn branches_come_from_every_page() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 5).await;
        let branches = client.list_branches().await.unwrap();
        let got: Vec<(String, String)> = branches
            .iter()
            .map(|b| (b.name.clone(), b.commit.as_str().to_owned()))
            .collect();
        assert_eq!(got, bb.branches(owner(&bb), REPO), "{flavor:?}");
        assert_eq!(got.len(), 6);
        // Page size 2: three pages were needed.
        let pages = bb.requests_to("/branches");
        assert_eq!(pages.len(), 3, "{flavor:?}: {pages:#?}");
        if flavor == Flavor::Cloud {
            // The client followed `next` as given: later pages keep pagelen and add page=N.
            let q = pages[2].query.clone().unwrap_or_default();
            assert!(q.contains("pagelen=100") && q.contains("page=3"), "{q}");
        } else {
            let q = pages[2].query.clone().unwrap_or_default();
            assert!(q.contains("start=4"), "{q}");
        }
    }
}

#[tokio::test]
async fn default_branch_and_repository() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 1).await;
        let repo = client.repository().await.unwrap();
        assert_eq!(repo.default_branch.as_deref(), Some("main"), "{flavor:?}");
        assert_eq!(repo.full_name, format!("{}/{REPO}", owner(&bb)));
        assert!(repo.id.is_some());
        bb.set_default_branch(owner(&bb), REPO, "feature-0");
        let repo = client.repository().await.unwrap();
        assert_eq!(repo.default_branch.as_deref(), Some("feature-0"));
    }
}

#[tokio::test]
async fn server_empty_repository_has_no_default_branch() {
    let (bb, _) = seeded(Flavor::Server, 0).await;
    bb.create_repo("PRJ", "empty");
    let client = common::client_for(&bb, "empty", &common::options());
    assert_eq!(client.repository().await.unwrap().default_branch, None);
}

#[tokio::test]
async fn open_pull_requests_across_pages_with_drafts() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 5).await;
        let o = owner(&bb);
        let spec = |i: usize| PullRequestSpec::new(o, REPO, &format!("feature-{i}"), "main");
        let a = bb.open_pull_request(spec(0));
        let b = bb.open_pull_request(spec(1).draft());
        let c = bb.open_pull_request(spec(2));
        let merged = bb.open_pull_request(spec(3));
        let d = bb.open_pull_request(spec(4));
        bb.close_pull_request(merged, "MERGED");

        let prs = client.list_open_pull_requests().await.unwrap();
        let mut ids: Vec<u64> = prs.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            vec![a, b, c, d],
            "{flavor:?}: drafts included, merged left out"
        );
        assert!(prs.iter().any(|p| p.id == b && p.draft) || flavor == Flavor::Server);

        let pr = prs.iter().find(|p| p.id == a).unwrap();
        let head = bb.branch_head(o, REPO, "feature-0").unwrap();
        assert_eq!(pr.source.branch, "feature-0");
        assert_eq!(pr.target.branch, "main");
        assert!(!pr.is_fork());
        match flavor {
            // Cloud hands out 12-character abbreviations; they still denote the head.
            Flavor::Cloud => {
                assert_eq!(pr.source.commit.as_str().len(), 12);
                assert!(head.starts_with(pr.source.commit.as_str()));
                let q = bb.requests_to("/pullrequests")[0].query.clone().unwrap();
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect();
                let query = pairs.iter().find(|(k, _)| k == "q").unwrap();
                assert!(query.1.contains(r#"state="OPEN""#), "{query:?}");
                assert!(query.1.contains("draft"), "{query:?}");
            }
            Flavor::Server => assert_eq!(pr.source.commit.as_str(), head),
        }
        assert!(bb.requests_to("ull").len() >= 2, "{flavor:?}: paged");
    }
}

#[tokio::test]
async fn resolve_short_hashes() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 1).await;
        let head = bb.branch_head(owner(&bb), REPO, "feature-0").unwrap();
        let full = client.resolve_commit(&head[..12]).await.unwrap();
        assert_eq!(full.as_str(), head, "{flavor:?}");
        assert!(full.is_full());
        let missing = client.resolve_commit("deadbeefdead").await.unwrap_err();
        assert!(
            matches!(missing, relay_bitbucket::Error::NotFound { .. }),
            "{missing:?}"
        );
    }
}

#[tokio::test]
async fn cloud_pull_request_commit_resolves_through_the_api() {
    let (bb, client) = seeded(Flavor::Cloud, 1).await;
    let id = bb.open_pull_request(PullRequestSpec::new("acme", REPO, "feature-0", "main"));
    let prs = client.list_open_pull_requests().await.unwrap();
    let pr = prs.iter().find(|p| p.id == id).unwrap();
    assert!(!pr.source.commit.is_full());
    let full = client
        .resolve_commit(pr.source.commit.as_str())
        .await
        .unwrap();
    assert_eq!(
        Some(full.as_str()),
        bb.branch_head("acme", REPO, "feature-0").as_deref()
    );
}

#[tokio::test]
async fn fork_pull_requests_name_their_source_repository() {
    for flavor in FLAVORS {
        let (bb, client) = seeded(flavor, 0).await;
        let o = owner(&bb);
        bb.create_repo("forker", "widgets-fork");
        bb.commit_file("forker", "widgets-fork", "patch", "p", "x", "fork work");
        bb.open_pull_request(
            PullRequestSpec::new(o, REPO, "patch", "main").from_fork("forker", "widgets-fork"),
        );
        let prs = client.list_open_pull_requests().await.unwrap();
        assert_eq!(prs.len(), 1);
        assert!(prs[0].is_fork(), "{flavor:?}");
        assert_eq!(prs[0].source.repository.full_name, "forker/widgets-fork");
    }
}
