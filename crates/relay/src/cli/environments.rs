//! `environment:*` commands.

use serde_json::json;

use super::args::EnvironmentListArgs;
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::config::Config;

pub async fn list(
    config: &Config,
    format: Format,
    args: EnvironmentListArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let rows = relay_store::environments::list(&pool, args.integration.as_deref()).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| args.all || r.status != "deleted")
        .collect();
    let values: Vec<_> = rows
        .iter()
        .map(|e| {
            json!({
                "integration_id": e.integration_id,
                "name": e.name,
                "kind": e.kind,
                "status": e.status,
                "parent": e.parent,
                "branch": e.branch,
                "head_commit": e.head_commit,
                "pr_id": e.pr_id,
                "pr_source_branch": e.pr_source_branch,
                "pr_target_branch": e.pr_target_branch,
                "pr_state": e.pr_state,
                "failure_reason": e.failure_reason,
                "updated_at": e.updated_at.to_rfc3339(),
            })
        })
        .collect();
    emit(format, &values, || {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|e| {
                vec![
                    e.integration_id.clone(),
                    e.name.clone(),
                    e.kind.clone(),
                    e.status.clone(),
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
