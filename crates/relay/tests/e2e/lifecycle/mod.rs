//! The environment lifecycle end to end: activate and deactivate through the admin API and
//! the CLI (real git, real PostgreSQL, a fake Bitbucket), each refused transition, a
//! replayed activation; deployment reports and the statuses they lead to.

mod reports;
pub(crate) mod stage;

use relay_testkit::Flavor;
use serde_json::json;
use sqlx::PgPool;

use crate::cli::Relay;
use crate::support::ADMIN_TOKEN;
use stage::Stage;

#[sqlx::test(migrations = "../../migrations")]
async fn activate_deploys_the_head_and_deactivate_tears_it_down(pool: PgPool) {
    let stage = Stage::new(pool, Flavor::Server, "hook").await;
    let head = stage.commit("feature", "a.txt");
    stage.resync().await;
    // A new branch is tracked and mirrored, but not deployed.
    assert_eq!(stage.status_of("feature").await, "inactive");
    assert_eq!(stage.deploy_ref("feature"), None);
    assert_eq!(stage.events_of("feature"), ["environment.created"]);

    let path = stage.env_path("feature", "activate");
    let (status, answer) = stage
        .post(&path, ADMIN_TOKEN, json!({"sync_data": true}))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "queued");
    stage.settle().await;
    assert_eq!(stage.status_of("feature").await, "active");
    assert_eq!(stage.deploy_ref("feature").as_deref(), Some(head.as_str()));
    assert_eq!(
        stage.events_of("feature"),
        [
            "environment.created",
            "environment.activated",
            "environment.synced",
            "environment.deployed"
        ]
    );
    let deployed = stage.hook_events.lock().unwrap().last().cloned().unwrap();
    assert_eq!(deployed["data"]["commit"], head.as_str());
    let built = stage.build_status(&head, "feature").unwrap();
    assert_eq!(built.state, "SUCCESSFUL");

    // Replayed (the same transition delivery planned again): nothing new happens.
    let delivery = answer["delivery_id"].as_i64().unwrap();
    let jobs = stage.job_count().await;
    relay_store::queue::redeliver(&stage.pool, delivery)
        .await
        .unwrap();
    stage.settle().await;
    assert_eq!(
        stage.job_count().await,
        jobs,
        "a replayed activation queues nothing"
    );
    // Asking again answers "unchanged" without queueing anything.
    let (status, answer) = stage.post(&path, ADMIN_TOKEN, json!({})).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("unchanged"))
    );

    let (status, _) = stage
        .post(
            &stage.env_path("feature", "deactivate"),
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    stage.settle().await;
    assert_eq!(stage.status_of("feature").await, "inactive");
    assert_eq!(
        stage.deploy_ref("feature"),
        None,
        "removed from the deploy remote"
    );
    assert_eq!(
        stage.events_of("feature").last().map(String::as_str),
        Some("environment.deactivated")
    );
    assert_eq!(
        stage.build_status(&head, "feature").unwrap().state,
        "CANCELLED"
    );

    // Later pushes are mirrored only: nothing deployed until it is activated again.
    let next = stage.commit("feature", "b.txt");
    let events = stage.events_of("feature").len();
    stage.resync().await;
    assert_eq!(stage.deploy_ref("feature"), None);
    assert_eq!(stage.events_of("feature").len(), events);
    let row = relay_store::environments::get(&stage.pool, &stage.id, "feature")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.head_commit.as_deref(), Some(next.as_str()));
}

#[sqlx::test(migrations = "../../migrations")]
async fn refused_transitions_change_nothing(pool: PgPool) {
    let stage = Stage::new(pool.clone(), Flavor::Cloud, "hook").await;
    stage.commit("doomed", "a.txt");
    stage.resync().await;
    stage.fake.delete_branch("team", "app", "doomed");
    stage.resync().await;
    assert_eq!(stage.status_of("doomed").await, "deleting");
    let jobs = stage.job_count().await;

    let cases = [
        ("main", "deactivate", 409, "production"),
        ("doomed", "activate", 409, "deleted"),
        ("nope", "activate", 404, "not found"),
        ("nope", "deactivate", 404, "not found"),
    ];
    for (name, action, expected, needle) in cases {
        let (status, answer) = stage
            .post(&stage.env_path(name, action), ADMIN_TOKEN, json!({}))
            .await;
        assert_eq!(status, expected, "{name} {action}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{name} {action}: {answer}");
    }
    assert_eq!(stage.status_of("main").await, "active");
    assert_eq!(stage.job_count().await, jobs, "nothing was queued");

    // The CLI: one clear line and a non-zero exit.
    let relay = Relay::new(&pool);
    let out = relay
        .command(&["environment:deactivate", &stage.id, "main"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("production"), "{stderr}");
    let out = relay
        .command(&["environment:activate", &stage.id, "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stage.status_of("main").await, "active");
}

#[sqlx::test(migrations = "../../migrations")]
async fn info_url_and_list_filters(pool: PgPool) {
    let stage = Stage::new(pool.clone(), Flavor::Cloud, "hook").await;
    stage.commit("feature", "a.txt");
    stage.resync().await;
    let relay = Relay::new(&pool);
    let out = relay
        .command(&["environment:url", &stage.id, "feature"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://feature.preview.example.com"
    );
    let info = |args: &[&str]| {
        let mut all = vec!["environment:info", &stage.id, "feature"];
        all.extend_from_slice(args);
        let out = relay.command(&all).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(info(&["--property", "status"]).trim(), "inactive");
    assert!(info(&[]).contains("last_deployment"));

    let list = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["environment:list", "--format", "json"];
        all.extend_from_slice(args);
        let out = relay.command(&all).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let names = value.as_array().unwrap().iter();
        names
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list(&["--status", "inactive"]), ["feature"]);
    assert_eq!(list(&["--type", "production"]), ["main"]);
    assert_eq!(list(&["--type", "pull_request"]), Vec::<String>::new());

    let api = |query: &str| {
        let url = stage.server.url(&format!("/api/v1/environments?{query}"));
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = api("status=active").await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body[0]["name"], "main");
    let (status, body) = api("type=branch").await;
    assert_eq!((status, body[0]["name"].as_str()), (200, Some("feature")));
    assert_eq!(api("status=sleeping").await.0, 422);

    let url = stage.server.url(&format!(
        "/api/v1/integrations/{}/environments/feature",
        stage.id
    ));
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["url"], "https://feature.preview.example.com");
    assert_eq!(body["status"], "inactive");
}
