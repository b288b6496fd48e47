//! `job:*` commands.

use serde_json::json;

use super::args::{JobIdArg, JobListArgs};
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::admin::views;
use crate::config::Config;

pub(super) async fn list(
    config: &Config,
    format: Format,
    args: JobListArgs,
) -> Result<(), CliError> {
    if args.limit < 1 {
        return Err(CliError::Invalid("--limit must be at least 1".into()));
    }
    let pool = connect(config).await?;
    let rows = relay_store::jobs::list(
        &pool,
        args.integration.as_deref(),
        None,
        args.state,
        args.limit,
    )
    .await?;
    let values: Vec<_> = rows.iter().map(views::job).collect();
    emit(format, &values, || {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|j| {
                vec![
                    j.id.to_string(),
                    j.integration_id.clone(),
                    j.kind.to_string(),
                    j.state.to_string(),
                    j.attempts.to_string(),
                    j.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &["ID", "Integration", "Kind", "State", "Attempts", "Error"],
            &table,
        )
    })
}

pub(super) async fn retry(config: &Config, format: Format, args: JobIdArg) -> Result<(), CliError> {
    let pool = connect(config).await?;
    relay_store::jobs::retry(&pool, args.id)
        .await
        .map_err(|err| match err {
            relay_store::StoreError::Conflict(_) => CliError::Invalid(format!(
                "job {} is running; it cannot be retried now",
                args.id
            )),
            other => CliError::from(other),
        })?;
    emit(format, &json!({ "retried": args.id }), || {
        format!("Job {} queued again\n", args.id)
    })
}
