//! The `relay` command line. Command names follow the hosted platform's CLI
//! (`integration:add`, `integration:get ID --property hook_url`, ...).

mod activity;
mod args;
mod deliveries;
mod environments;
mod error;
mod integrations;
mod jobs;
mod output;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use error::CliError;

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "relay",
    version,
    about = "Self-hosted webhook relay for Bitbucket Cloud and Server/Data Center"
)]
pub struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "RELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies migrations on start).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Add an integration; prints its id, hook URL and webhook secret (once).
    #[command(name = "integration:add")]
    IntegrationAdd(args::AddArgs),
    /// Change an integration's settings.
    #[command(name = "integration:update")]
    IntegrationUpdate(args::UpdateArgs),
    /// Show an integration (secrets only as "set" unless --show-secret).
    #[command(name = "integration:get")]
    IntegrationGet(args::GetArgs),
    /// List integrations.
    #[command(name = "integration:list")]
    IntegrationList,
    /// Delete an integration with its deliveries and environments.
    #[command(name = "integration:delete")]
    IntegrationDelete(args::DeleteArgs),
    /// Check credentials, repository access, webhook permissions and the webhook itself.
    #[command(name = "integration:validate")]
    IntegrationValidate(args::IdArg),
    /// Queue a reconciliation: list branches and pull requests through Bitbucket's API and
    /// plan them like webhooks (heals missed deliveries).
    #[command(name = "integration:resync")]
    IntegrationResync(args::IdArg),
    /// List an integration's activities (deliveries, reconciles, jobs, circuit changes),
    /// newest first.
    #[command(name = "integration:activity:list")]
    IntegrationActivityList(args::ActivityListArgs),
    /// Print one activity's timestamped lines (attempts, errors, decisions).
    #[command(name = "integration:activity:log")]
    IntegrationActivityLog(args::ActivityLogArgs),
    /// List recent deliveries.
    #[command(name = "delivery:list")]
    DeliveryList(args::DeliveryListArgs),
    /// Show one delivery: headers, status, last error.
    #[command(name = "delivery:show")]
    DeliveryShow(args::DeliveryIdArg),
    /// Put a delivery back in the queue to be planned again.
    #[command(name = "delivery:redeliver")]
    DeliveryRedeliver(args::DeliveryIdArg),
    /// List environments.
    #[command(name = "environment:list")]
    EnvironmentList(args::EnvironmentListArgs),
    /// Show one environment: status, head, URL, last deployment.
    #[command(name = "environment:info")]
    EnvironmentInfo(args::EnvironmentInfoArgs),
    /// Print the environment's URL (the last deployment's, else the environment_url template).
    #[command(name = "environment:url")]
    EnvironmentUrl(args::EnvironmentArgs),
    /// Deploy an inactive environment at its current head.
    #[command(name = "environment:activate")]
    EnvironmentActivate(args::ActivateArgs),
    /// Stop deploying an environment; its row and mirror are kept.
    #[command(name = "environment:deactivate")]
    EnvironmentDeactivate(args::EnvironmentArgs),
    /// Report a deployment's outcome (what a deploy side or CI job calls back with).
    #[command(name = "deployment:report")]
    DeploymentReport(args::ReportArgs),
    /// List jobs (git work, deploy-side events, build statuses).
    #[command(name = "job:list")]
    JobList(args::JobListArgs),
    /// Queue a dead (or finished) job again with fresh attempts.
    #[command(name = "job:retry")]
    JobRetry(args::JobIdArg),
    /// Print a new random RELAY_SECRET_KEY.
    #[command(name = "secret-key:generate")]
    SecretKeyGenerate,
}

/// Runs a parsed command line. Configuration errors surface here, once, as a `CliError`.
pub async fn run(cli: Cli, config: Config) -> Result<(), CliError> {
    let format = cli.format;
    match cli.command {
        Command::Serve => serve::serve(config).await,
        Command::Migrate => serve::migrate(&config).await,
        Command::IntegrationAdd(args) => integrations::add(&config, format, args).await,
        Command::IntegrationUpdate(args) => integrations::update(&config, format, args).await,
        Command::IntegrationGet(args) => integrations::get(&config, format, args).await,
        Command::IntegrationList => integrations::list(&config, format).await,
        Command::IntegrationDelete(args) => integrations::delete(&config, format, args).await,
        Command::IntegrationValidate(args) => integrations::validate(&config, format, args).await,
        Command::IntegrationResync(args) => integrations::resync(&config, format, args).await,
        Command::IntegrationActivityList(args) => activity::list(&config, format, args).await,
        Command::IntegrationActivityLog(args) => activity::log(&config, format, args).await,
        Command::DeliveryList(args) => deliveries::list(&config, format, args).await,
        Command::DeliveryShow(args) => deliveries::show(&config, format, args).await,
        Command::DeliveryRedeliver(args) => deliveries::redeliver(&config, format, args).await,
        Command::EnvironmentList(args) => environments::list(&config, format, args).await,
        Command::EnvironmentInfo(args) => environments::info(&config, format, args).await,
        Command::EnvironmentUrl(args) => environments::url(&config, args).await,
        Command::EnvironmentActivate(args) => environments::activate(&config, format, args).await,
        Command::EnvironmentDeactivate(args) => {
            environments::deactivate(&config, format, args).await
        }
        Command::DeploymentReport(args) => environments::report(&config, format, args).await,
        Command::JobList(args) => jobs::list(&config, format, args).await,
        Command::JobRetry(args) => jobs::retry(&config, format, args).await,
        Command::SecretKeyGenerate => {
            println!("{}", crate::secrets::SecretKey::generate_encoded());
            Ok(())
        }
    }
}
