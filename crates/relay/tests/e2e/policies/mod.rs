//! Preview-environment policies end to end, on Cloud and Server through the fake Bitbucket,
//! with real PostgreSQL and git: pull-request comments (created once, edited in place, 409 on
//! a stale version, a deleted one not recreated, the Cloud permission), drafts, branch
//! filters, the idle TTL with a short duration, and the cap with its queue.

mod capacity;
mod comments;
mod drafts_filters;

use relay::admin::integrations::{self, IntegrationInput};
use relay_core::settings::SettingsPatch;
use relay_store::environments::EnvironmentRow;
use relay_testkit::PullRequestSpec;

use crate::cli::Relay;
use crate::lifecycle::stage::Stage;
use crate::support::key;

/// Applies `patch` to the stage's integration the way `integration:update` stores it.
async fn configure(stage: &Stage, patch: SettingsPatch) {
    let input = IntegrationInput {
        settings: patch,
        ..Default::default()
    };
    integrations::update(&stage.pool, &key(), &stage.id, input)
        .await
        .unwrap();
}

async fn row(stage: &Stage, name: &str) -> Option<EnvironmentRow> {
    relay_store::environments::get(&stage.pool, &stage.id, name)
        .await
        .unwrap()
}

/// Commits on `branch` and opens a pull request from it into `main`; its id.
fn open_pr(stage: &Stage, branch: &str, draft: bool) -> u64 {
    stage.commit(branch, &format!("{branch}.txt"));
    let spec = PullRequestSpec::new(stage.owner, "app", branch, "main");
    stage
        .fake
        .open_pull_request(if draft { spec.draft() } else { spec })
}

async fn dead_jobs(stage: &Stage) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'dead'")
        .fetch_one(&stage.pool)
        .await
        .unwrap()
}

/// The CLI against the stage's database and fake (off the runtime the fake answers on).
async fn cli(stage: &Stage, args: &[&str]) -> std::process::Output {
    let relay = Relay::new(&stage.pool)
        .with_env("RELAY_BITBUCKET_CLOUD_URL", stage.fake.base_url().as_str())
        .with_env(
            "RELAY_BITBUCKET_CLOUD_API_URL",
            stage.fake.api_url().as_str(),
        );
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        relay.run(&args)
    })
    .await
    .unwrap()
}
