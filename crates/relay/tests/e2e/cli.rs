//! The real `relay` binary against a real database.

use std::process::{Command, Output};

use sqlx::PgPool;

use crate::support::*;

#[derive(Clone)]
pub(crate) struct Relay {
    database_url: String,
    extra_env: Vec<(String, String)>,
}

impl Relay {
    pub(crate) fn new(pool: &PgPool) -> Self {
        Self {
            database_url: database_url(pool),
            extra_env: vec![(
                "RELAY_PUBLIC_URL".into(),
                "https://relay.example.com".into(),
            )],
        }
    }

    pub(crate) fn with_env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("RELAY_SECRET_KEY", TEST_KEY);
        for (k, v) in &self.extra_env {
            command.env(k, v);
        }
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "relay {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub(crate) fn add_cloud(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "integration:add",
            "--type=bitbucket",
            "--repository=ws/repo",
            "--key=consumer-key",
            "--secret=consumer-secret-value",
            "--register-webhook=false",
        ];
        args.extend(extra);
        self.json(&args)
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn add_get_list_update_delete(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&[]);
    let id = created["id"].as_str().unwrap().to_owned();
    let hook_url = format!("https://relay.example.com/webhooks/bitbucket/{id}");
    assert_eq!(created["hook_url"], hook_url.as_str());
    let secret = created["webhook_secret"].as_str().unwrap();
    assert!(secret.len() >= 32, "a generated secret is long: {secret}");

    assert_eq!(
        relay
            .ok(&["integration:get", &id, "--property", "hook_url"])
            .trim(),
        hook_url
    );
    let view = relay.json(&["integration:get", &id]);
    assert_eq!(view["type"], "bitbucket");
    assert_eq!(view["repository"], "ws/repo");
    assert_eq!(view["fetch_branches"], true);
    assert_eq!(view["prune_branches"], true);
    assert_eq!(view["build_pull_requests"], true);
    assert_eq!(view["build_pull_requests_post_merge"], false);
    assert_eq!(view["webhook_secret"], "set");
    assert_eq!(view["secret"], "set");

    let table = relay.ok(&["integration:get", &id]);
    assert!(
        table.contains("hook_url") && table.contains(&hook_url),
        "{table}"
    );

    let updated = relay.json(&[
        "integration:update",
        &id,
        "--build-pull-requests-post-merge",
        "--deploy-hook-url=https://deploy.example.com/hook",
        "--environment-url=https://{environment}.preview.example.com",
        "--deploy-remote=git@git.example.com:team/app.git",
        "--default-branch=main",
    ]);
    assert_eq!(updated["build_pull_requests_post_merge"], true);
    assert_eq!(
        updated["deploy_hook_url"],
        "https://deploy.example.com/hook"
    );
    assert_eq!(updated["default_branch"], "main");
    let cleared = relay.json(&["integration:update", &id, "--deploy-hook-url="]);
    assert_eq!(cleared["deploy_hook_url"], serde_json::Value::Null);

    let server = relay.json(&[
        "integration:add",
        "--type=bitbucket_server",
        "--bitbucket-url=https://bitbucket.example.com/",
        "--username=bot",
        "--token=server-token-value",
        "--repository=PRJ/app",
        "--register-webhook=false",
    ]);
    let server_id = server["id"].as_str().unwrap();
    assert_eq!(
        relay
            .ok(&["integration:get", server_id, "-P", "base_url"])
            .trim(),
        "https://bitbucket.example.com"
    );

    let list = relay.json(&["integration:list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let table = relay.ok(&["integration:list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("PRJ/app") && table.contains("ws/repo"),
        "{table}"
    );

    relay.ok(&["integration:delete", &id, "--register-webhook=false"]);
    let gone = relay.run(&["integration:get", &id]);
    assert_eq!(gone.status.code(), Some(3));
}

#[sqlx::test(migrations = "../../migrations")]
async fn given_webhook_secret_is_kept_and_shown_only_on_request(pool: PgPool) {
    let relay = Relay::new(&pool);
    let created = relay.add_cloud(&["--webhook-secret=existing-hook-secret"]);
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["webhook_secret"], "existing-hook-secret");
    let shown = relay.ok(&[
        "integration:get",
        id,
        "--property",
        "webhook_secret",
        "--show-secret",
    ]);
    assert_eq!(shown.trim(), "existing-hook-secret");
    let hidden = relay.ok(&["integration:get", id, "--property", "webhook_secret"]);
    assert_eq!(hidden.trim(), "set");
}

#[sqlx::test(migrations = "../../migrations")]
async fn prune_is_forced_off_when_fetch_is_off_on_every_path(pool: PgPool) {
    let relay = Relay::new(&pool);
    // add: asked for prune, but no fetch.
    let created = relay.add_cloud(&["--fetch-branches=false", "--prune-branches=true"]);
    assert_eq!(created["prune_branches"], false);
    let id = created["id"].as_str().unwrap();
    let view = relay.json(&["integration:get", id]);
    assert_eq!(view["prune_branches"], false);
    assert!(view["prune_branches_note"]
        .as_str()
        .unwrap()
        .contains("forced off"));

    // update: turning fetch back on restores the prune the admin asked for.
    let view = relay.json(&["integration:update", id, "--fetch-branches"]);
    assert_eq!(view["prune_branches"], true);
    assert!(view.get("prune_branches_note").is_none());

    // update: turning fetch off forces prune off, and says so.
    let output = relay.run(&[
        "integration:update",
        id,
        "--fetch-branches=false",
        "--format",
        "json",
    ]);
    assert!(output.status.success());
    let view: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(view["prune_branches"], false);
    assert!(String::from_utf8_lossy(&output.stderr).contains("forced off"));

    // update: asking for prune while fetch is off still yields no pruning.
    let view = relay.json(&["integration:update", id, "--prune-branches=true"]);
    assert_eq!(view["prune_branches"], false);
    assert_eq!(
        relay
            .ok(&["integration:get", id, "-P", "prune_branches"])
            .trim(),
        "false"
    );

    // The planner reads the same rule.
    let record = relay_store::integrations::get(&pool, id).await.unwrap();
    assert!(!record.settings.effective_prune_branches());
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_input_exits_non_zero_with_one_clear_line(pool: PgPool) {
    let relay = Relay::new(&pool);
    let id = relay.add_cloud(&[])["id"].as_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["integration:add", "--type=github", "--repository=a/b"],
            2,
            "github",
        ),
        (
            vec!["integration:add", "--type=bitbucket", "--repository=a/b"],
            2,
            "--key and --secret",
        ),
        (
            vec![
                "integration:add",
                "--type=bitbucket",
                "--repository=nope",
                "--key=k",
                "--secret=s",
            ],
            2,
            "repository",
        ),
        (
            vec![
                "integration:add",
                "--type=bitbucket_server",
                "--repository=P/r",
                "--token=t",
            ],
            2,
            "--base-url",
        ),
        (
            vec![
                "integration:add",
                "--type=bitbucket_server",
                "--repository=P/r",
                "--token=t",
                "--base-url=not a url",
            ],
            2,
            "base_url",
        ),
        (
            vec!["integration:update", &id, "--token=t"],
            2,
            "token does not apply",
        ),
        (
            vec!["integration:update", &id, "--deploy-hook-url=ftp://x"],
            2,
            "deploy_hook_url",
        ),
        (
            vec![
                "integration:update",
                &id,
                "--environment-url=https://{branch}.x",
            ],
            2,
            "environment_url",
        ),
        (
            vec!["integration:update", &id, "--default-branch=a..b"],
            2,
            "default_branch",
        ),
        (
            vec!["integration:update", &id, "--fetch-branches=maybe"],
            2,
            "maybe",
        ),
        (
            vec!["integration:update", "missing", "--fetch-branches=false"],
            3,
            "not found",
        ),
        (vec!["integration:get", "missing"], 3, "not found"),
        (
            vec!["integration:get", &id, "--property", "nope"],
            2,
            "unknown property",
        ),
        (vec!["integration:delete", "missing"], 3, "not found"),
        (vec!["integration:frobnicate"], 2, "unrecognized subcommand"),
        (
            vec!["job:list", "--state=bogus"],
            2,
            "possible values: pending, running, succeeded, dead, failed",
        ),
        (
            vec!["delivery:list", "--status=dead"],
            2,
            "possible values: pending, processed, ignored, failed",
        ),
    ];
    for (args, code, needle) in cases {
        let output = relay.run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: one line: {stderr}"
        );
    }
    // Nothing was written by the failed adds.
    assert_eq!(
        relay.json(&["integration:list"]).as_array().unwrap().len(),
        1
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn missing_configuration_is_reported(pool: PgPool) {
    let relay = Relay::new(&pool);
    let output = relay
        .command(&[
            "integration:add",
            "--type=bitbucket",
            "--repository=a/b",
            "--key=k",
            "--secret=s",
        ])
        .env_remove("RELAY_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RELAY_SECRET_KEY"));
    let output = relay
        .command(&["integration:list"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
    let output = relay
        .command(&["integration:list"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")
        .env("RELAY_DB_ACQUIRE_TIMEOUT_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn migrate_is_idempotent(pool: PgPool) {
    let relay = Relay::new(&pool);
    assert!(relay.ok(&["migrate"]).contains("migrations applied"));
    assert!(relay.ok(&["migrate"]).contains("migrations applied"));
}
