//! The fake answers in the documented shapes: OAuth token and error bodies, Cloud and Server
//! page envelopes, error bodies, and pull-request objects relay-core can parse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use relay_core::event::parse_pull_request_object;
use relay_core::IntegrationType;
use relay_testkit::{FakeBitbucket, Flavor, PullRequestSpec};
use serde_json::Value;

async fn token(bb: &FakeBitbucket, secret: &str) -> (u16, Value) {
    let (key, _) = bb.consumer();
    let resp = reqwest::Client::new()
        .post(format!("{}site/oauth2/access_token", bb.base_url()))
        .basic_auth(key, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get(url: String, auth: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn seed(bb: &FakeBitbucket, owner: &str) -> u64 {
    bb.create_repo(owner, "widgets");
    bb.commit_file(owner, "widgets", "main", "README", "x", "init");
    for b in ["a", "b"] {
        bb.commit_file(owner, "widgets", b, "f", b, "work");
    }
    bb.open_pull_request(PullRequestSpec::new(owner, "widgets", "a", "main"));
    bb.open_pull_request(PullRequestSpec::new(owner, "widgets", "b", "main").draft())
}

#[tokio::test]
async fn cloud_shapes() {
    let bb = FakeBitbucket::start(Flavor::Cloud).await;
    assert_ne!(bb.base_url(), bb.api_url(), "two roles, two ports");
    let draft = seed(&bb, "acme");

    let (status, body) = token(&bb, "wrong").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unauthorized_client");
    assert!(body["error_description"].is_string());
    let (status, body) = token(&bb, &bb.consumer().1).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["state"], "client_credentials");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["refresh_token"].is_string() && body["scopes"].is_string());
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let api = bb.api_url().to_string();

    let (status, body) = get(format!("{api}2.0/repositories/acme/widgets"), "Bearer x").await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "error");
    assert!(body["error"]["message"].is_string());

    let (status, repo) = get(format!("{api}2.0/repositories/acme/widgets"), &bearer).await;
    assert_eq!(status, 200);
    assert_eq!(repo["full_name"], "acme/widgets");
    assert_eq!(repo["mainbranch"]["name"], "main");
    assert_eq!(repo["mainbranch"]["type"], "branch");
    assert!(repo["uuid"].as_str().unwrap().starts_with('{'));

    let (_, page) = get(
        format!("{api}2.0/repositories/acme/widgets/refs/branches"),
        &bearer,
    )
    .await;
    assert_eq!(
        (page["size"].as_u64(), page["page"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(page["pagelen"], 2);
    assert_eq!(
        page["values"][0]["target"]["hash"].as_str().unwrap().len(),
        40
    );
    let (_, last) = get(page["next"].as_str().unwrap().to_owned(), &bearer).await;
    assert!(last.get("next").is_none());
    assert_eq!(last["values"].as_array().unwrap().len(), 1);

    // Without a draft clause the draft stays hidden; with one it is listed.
    let url = format!("{api}2.0/repositories/acme/widgets/pullrequests");
    let (_, plain) = get(format!("{url}?state=OPEN"), &bearer).await;
    assert_eq!(plain["size"], 1);
    let q = "q=state%3D%22OPEN%22+AND+%28draft%3Dtrue+OR+draft%3Dfalse%29";
    let (_, all) = get(format!("{url}?{q}"), &bearer).await;
    assert_eq!(all["size"], 2);
    for v in all["values"].as_array().unwrap() {
        assert_eq!(v["source"]["commit"]["hash"].as_str().unwrap().len(), 12);
        let pr =
            parse_pull_request_object(IntegrationType::Cloud, v.to_string().as_bytes()).unwrap();
        assert_eq!(pr.draft, pr.id == draft);
        assert!(pr.updated_at_ms.is_some());
    }

    let (status, body) = get(format!("{api}2.0/repositories/acme/nope"), &bearer).await;
    assert_eq!(status, 404);
    assert_eq!(body["type"], "error");
}

#[tokio::test]
async fn server_shapes() {
    let bb = FakeBitbucket::start(Flavor::Server).await;
    assert_eq!(bb.base_url(), bb.api_url());
    seed(&bb, "PRJ");
    let base = format!(
        "{}rest/api/latest/projects/PRJ/repos/widgets",
        bb.base_url()
    );
    let bearer = format!("Bearer {}", bb.server_token());

    let (status, body) = get(format!("{base}/branches"), "Bearer wrong").await;
    assert_eq!(status, 401);
    assert!(body["errors"][0]["message"].is_string());

    let (_, page) = get(format!("{base}/branches"), &bearer).await;
    assert_eq!(page["isLastPage"], false);
    assert_eq!(
        (page["start"].as_u64(), page["nextPageStart"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(page["values"][0]["id"], "refs/heads/a");
    assert_eq!(
        page["values"][0]["latestCommit"].as_str().unwrap().len(),
        40
    );
    let (_, last) = get(format!("{base}/branches?start=2"), &bearer).await;
    assert_eq!(last["isLastPage"], true);
    assert!(last.get("nextPageStart").is_none());

    let (_, default) = get(format!("{base}/default-branch"), &bearer).await;
    assert_eq!(default["displayId"], "main");
    let (_, prs) = get(format!("{base}/pull-requests?state=OPEN&limit=50"), &bearer).await;
    assert_eq!(prs["values"].as_array().unwrap().len(), 2);
    for v in prs["values"].as_array().unwrap() {
        let pr =
            parse_pull_request_object(IntegrationType::Server, v.to_string().as_bytes()).unwrap();
        assert!(pr.source.commit.is_full());
        assert_eq!(pr.target.branch, "main");
    }
    // API 1.0 is the same API.
    let (status, _) = get(
        format!("{}rest/api/1.0/projects/PRJ/repos/widgets", bb.base_url()),
        &bearer,
    )
    .await;
    assert_eq!(status, 200);
}
