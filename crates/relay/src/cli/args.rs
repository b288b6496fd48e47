//! Flags, named as in the hosted platform's CLI. Booleans take `--flag`, `--flag=true` or
//! `--flag=false`. Secrets can come from the environment so they stay out of shell history.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use relay_core::deployment::{DeployFeedback, DeploymentState};
use relay_core::policy::DurationInput;
use relay_core::settings::SettingsPatch;
use relay_core::{EnvironmentKind, EnvironmentStatus};
use relay_core::{IntegrationType, TextEnum};
use relay_store::{DeliveryStatus, JobState};

use crate::admin::integrations::IntegrationInput;

#[derive(Debug, Args)]
pub struct IdArg {
    /// Integration id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// bitbucket (Cloud) or bitbucket_server (Server / Data Center).
    #[arg(long = "type", value_parser = parse_type)]
    pub kind: IntegrationType,
    #[command(flatten)]
    pub fields: IntegrationFields,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Integration id.
    pub id: String,
    /// Also remove the repository webhook from Bitbucket (default true).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub register_webhook: Option<bool>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Integration id.
    pub id: String,
    #[command(flatten)]
    pub fields: IntegrationFields,
    /// Generate a new webhook secret, re-register the webhook with it (unless
    /// --register-webhook=false) and print it once; the previous secret stays valid for
    /// --webhook-secret-grace.
    #[arg(long, conflicts_with = "webhook_secret")]
    pub rotate_webhook_secret: bool,
    /// How long the previous webhook secret is still accepted (45s, 90m, 24h, 7d).
    #[arg(long, value_name = "DURATION", requires = "rotate_webhook_secret")]
    pub webhook_secret_grace: Option<String>,
    /// Generate a new deploy-hook signing secret and print it once; events carry both
    /// signatures for --deploy-hook-secret-grace.
    #[arg(long, conflicts_with = "deploy_hook_secret")]
    pub rotate_deploy_hook_secret: bool,
    /// How long events are also signed with the previous deploy-hook secret.
    #[arg(long, value_name = "DURATION", requires = "rotate_deploy_hook_secret")]
    pub deploy_hook_secret_grace: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Integration id.
    pub id: String,
    /// Print only this property's value (e.g. hook_url).
    #[arg(long, short = 'P')]
    pub property: Option<String>,
    /// Reveal the stored secrets (webhook secret, OAuth secret, token).
    #[arg(long)]
    pub show_secret: bool,
}

#[derive(Debug, Args)]
pub struct IntegrationFields {
    /// Repository: workspace/repo (Cloud) or PROJECT/repo (Server).
    #[arg(long)]
    pub repository: Option<String>,
    /// Cloud: OAuth consumer key.
    #[arg(long)]
    pub key: Option<String>,
    /// Cloud: OAuth consumer secret.
    #[arg(long, env = "RELAY_INTEGRATION_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Server: base URL, e.g. https://bitbucket.example.com.
    #[arg(long, alias = "bitbucket-url")]
    pub base_url: Option<String>,
    /// Server: user name.
    #[arg(long)]
    pub username: Option<String>,
    /// Server: HTTP access token (sent as a Bearer token).
    #[arg(long, env = "RELAY_INTEGRATION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Use this webhook secret instead of generating one (for a webhook that already exists).
    #[arg(long, env = "RELAY_INTEGRATION_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Secret that signs deploy-hook events (whsec_...); generated when the integration is added.
    #[arg(
        long,
        env = "RELAY_INTEGRATION_DEPLOY_HOOK_SECRET",
        hide_env_values = true
    )]
    pub deploy_hook_secret: Option<String>,
    /// Token deployment reports authenticate with (rpt_...); generated when the integration is
    /// added.
    #[arg(
        long,
        env = "RELAY_INTEGRATION_DEPLOY_REPORT_TOKEN",
        hide_env_values = true
    )]
    pub deploy_report_token: Option<String>,
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Git remote the matching refs are pushed to ("" clears it).
    #[arg(long)]
    pub deploy_remote: Option<String>,
    /// Endpoint that receives signed environment events ("" clears it).
    #[arg(long)]
    pub deploy_hook_url: Option<String>,
    /// URL template such as https://{environment}.preview.example.com ("" clears it).
    #[arg(long)]
    pub environment_url: Option<String>,
    /// Also create/update the repository webhook on Bitbucket (default true).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub register_webhook: Option<bool>,
    /// Register the webhook on Bitbucket Cloud even though RELAY_PUBLIC_URL is a wildcard,
    /// loopback or private address (refused otherwise).
    #[arg(long)]
    pub force: bool,
}

impl IntegrationFields {
    pub fn into_input(self, kind: Option<IntegrationType>) -> IntegrationInput {
        IntegrationInput {
            kind,
            repository: self.repository,
            key: self.key,
            secret: self.secret,
            base_url: self.base_url,
            username: self.username,
            token: self.token,
            webhook_secret: self.webhook_secret,
            deploy_hook_secret: self.deploy_hook_secret,
            deploy_report_token: self.deploy_report_token,
            settings: self.settings.into(),
            deploy_remote: self.deploy_remote,
            deploy_hook_url: self.deploy_hook_url,
            environment_url: self.environment_url,
            unknown: Default::default(),
            register_webhook: self.register_webhook,
            force: self.force.then_some(true),
            rotate_webhook_secret: None,
            webhook_secret_grace: None,
            rotate_deploy_hook_secret: None,
            deploy_hook_secret_grace: None,
        }
    }
}

/// The planner's rules, one flag per [`SettingsPatch`] field.
#[derive(Debug, Args)]
pub struct SettingsFlags {
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub fetch_branches: Option<bool>,
    /// Forced off when --fetch-branches is false.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub prune_branches: Option<bool>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub build_pull_requests: Option<bool>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub build_pull_requests_post_merge: Option<bool>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub resync_pull_requests: Option<bool>,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub pull_requests_clone_parent_data: Option<bool>,
    /// Build pull requests from forks (untrusted code); off by default.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub build_fork_pull_requests: Option<bool>,
    /// The production branch ("" to learn it from Bitbucket).
    #[arg(long)]
    pub default_branch: Option<String>,
    /// hook: a 2xx from the deploy hook means deployed; report: the deploy side's
    /// deployment report decides.
    #[arg(long, value_name = "hook|report", value_parser = text_values::<DeployFeedback>(&[]))]
    pub deploy_feedback: Option<DeployFeedback>,
    /// One comment per pull-request environment on its pull request, edited in place
    /// (default true; Cloud needs the "Pull requests: Write" permission).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub pull_request_comments: Option<bool>,
    /// Draft pull requests get environments (default true); false: once ready for review.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub build_draft_pull_requests: Option<bool>,
    /// Only branches (and pull-request sources) whose whole name matches get environments
    /// (Rust regex syntax; "" clears it). The default branch always does.
    #[arg(long, value_name = "REGEX")]
    pub branch_include: Option<String>,
    /// Branches (and pull-request sources) whose whole name matches get none ("" clears it).
    #[arg(long, value_name = "REGEX")]
    pub branch_exclude: Option<String>,
    /// Only pull requests into a matching target branch get environments ("" clears it).
    #[arg(long, value_name = "REGEX")]
    pub pull_request_target_include: Option<String>,
    /// Deactivate active non-production environments after this long without a push or a
    /// deployment: 90s, 72h, 7d ("off" or 0: never, the default).
    #[arg(long, value_name = "DURATION")]
    pub environment_idle_ttl: Option<String>,
    /// At most this many active non-production environments; more wait for a slot (0: no
    /// limit, the default).
    #[arg(long, value_name = "N")]
    pub max_active_environments: Option<u32>,
}

impl From<SettingsFlags> for SettingsPatch {
    fn from(flags: SettingsFlags) -> Self {
        Self {
            fetch_branches: flags.fetch_branches,
            prune_branches: flags.prune_branches,
            build_pull_requests: flags.build_pull_requests,
            build_pull_requests_post_merge: flags.build_pull_requests_post_merge,
            resync_pull_requests: flags.resync_pull_requests,
            pull_requests_clone_parent_data: flags.pull_requests_clone_parent_data,
            build_fork_pull_requests: flags.build_fork_pull_requests,
            default_branch: flags.default_branch,
            deploy_feedback: flags.deploy_feedback,
            pull_request_comments: flags.pull_request_comments,
            build_draft_pull_requests: flags.build_draft_pull_requests,
            branch_include: flags.branch_include,
            branch_exclude: flags.branch_exclude,
            pull_request_target_include: flags.pull_request_target_include,
            environment_idle_ttl: flags.environment_idle_ttl.map(DurationInput::Text),
            max_active_environments: flags.max_active_environments,
        }
    }
}

/// Exactly the stored spellings of `T`, then `aliases`: all listed by `--help` and by the
/// error for anything else.
fn text_values<T: TextEnum + Send + Sync>(
    aliases: &'static [(&'static str, T)],
) -> impl TypedValueParser<Value = T> {
    let spellings = T::ALL.iter().map(|v| v.as_str());
    PossibleValuesParser::new(spellings.chain(aliases.iter().map(|(alias, _)| *alias))).try_map(
        move |text| {
            let alias = aliases.iter().find(|(alias, _)| *alias == text);
            alias
                .map(|(_, value)| *value)
                .or_else(|| T::parse_text(&text))
                .ok_or_else(|| format!("unknown {} {text:?}", T::WHAT))
        },
    )
}

fn parse_type(raw: &str) -> Result<IntegrationType, String> {
    raw.parse()
        .map_err(|e: relay_core::SettingsError| e.to_string())
}

#[derive(Debug, Args)]
pub struct DeliveryListArgs {
    #[arg(long)]
    pub integration: Option<String>,
    /// pending, processed, ignored or failed.
    #[arg(long, value_parser = text_values::<DeliveryStatus>(&[]))]
    pub status: Option<DeliveryStatus>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct DeliveryIdArg {
    /// Delivery id.
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct EnvironmentListArgs {
    #[arg(long)]
    pub integration: Option<String>,
    /// Include deleted environments (kept as the memory of what was deleted).
    #[arg(long)]
    pub all: bool,
    /// Only environments with this status.
    #[arg(long, value_parser = text_values::<EnvironmentStatus>(&[]))]
    pub status: Option<EnvironmentStatus>,
    /// Only environments of this kind.
    #[arg(long = "type", value_parser = text_values::<EnvironmentKind>(&[]))]
    pub kind: Option<EnvironmentKind>,
}

#[derive(Debug, Args)]
pub struct EnvironmentArgs {
    /// Integration id.
    pub id: String,
    /// Environment name (`main`, `pr-12`, ...).
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    #[command(flatten)]
    pub environment: EnvironmentArgs,
    /// Also ask the deploy side to copy the parent's data (`synced`).
    #[arg(long)]
    pub sync_data: bool,
}

#[derive(Debug, Args)]
pub struct EnvironmentInfoArgs {
    #[command(flatten)]
    pub environment: EnvironmentArgs,
    /// Print only this property's value (e.g. status, url).
    #[arg(long, short = 'P')]
    pub property: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub environment: EnvironmentArgs,
    /// The deployed commit (40 hex).
    #[arg(long)]
    pub commit: String,
    /// in_progress, success or failure.
    #[arg(long, value_parser = text_values::<DeploymentState>(&[]))]
    pub state: DeploymentState,
    /// Where the deployment can be seen.
    #[arg(long)]
    pub url: Option<String>,
    /// Where its logs are.
    #[arg(long)]
    pub log_url: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct JobListArgs {
    #[arg(long)]
    pub integration: Option<String>,
    /// pending, running, succeeded or dead ("failed" is accepted for dead).
    #[arg(long, value_parser = text_values::<JobState>(&[("failed", JobState::Dead)]))]
    pub state: Option<JobState>,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct JobIdArg {
    /// Job id.
    pub id: i64,
}

#[derive(Debug, Args)]
pub struct ActivityListArgs {
    /// Integration id.
    pub id: String,
    /// delivery, reconcile, job or circuit.
    #[arg(long = "type", value_parser = ["delivery", "reconcile", "job", "circuit"])]
    pub kind: Option<String>,
    /// pending, in_progress or complete.
    #[arg(long, value_parser = ["pending", "in_progress", "complete"])]
    pub state: Option<String>,
    /// success or failure.
    #[arg(long, value_parser = ["success", "failure"])]
    pub result: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct ActivityLogArgs {
    /// Integration id.
    pub id: String,
    /// Activity id, as `integration:activity:list` shows it (delivery-12, job-7, circuit-3).
    pub activity_id: String,
}
