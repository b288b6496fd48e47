//! `environment:*` commands.

use relay_core::EnvironmentStatus;

use super::args::EnvironmentListArgs;
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::admin::views;
use crate::config::Config;

pub(super) async fn list(
    config: &Config,
    format: Format,
    args: EnvironmentListArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let rows = relay_store::environments::list(&pool, args.integration.as_deref()).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| args.all || r.status != EnvironmentStatus::Deleted)
        .collect();
    let values: Vec<_> = rows.iter().map(views::environment).collect();
    emit(format, &values, || {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|e| {
                vec![
                    e.integration_id.clone(),
                    e.name.clone(),
                    e.kind.to_string(),
                    e.status.to_string(),
                    e.parent.clone().unwrap_or_default(),
                    e.head_commit
                        .as_deref()
                        .map(|c| c.chars().take(12).collect())
                        .unwrap_or_default(),
                    e.pr_id.map(|id| format!("#{id}")).unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &[
                "Integration",
                "Name",
                "Kind",
                "Status",
                "Parent",
                "Head",
                "PR",
            ],
            &table,
        )
    })
}
