//! `integration:activity:*` commands.

use serde_json::json;

use super::args::{ActivityListArgs, ActivityLogArgs};
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::admin::activity::{self, Query};
use crate::config::Config;

pub(super) async fn list(
    config: &Config,
    format: Format,
    args: ActivityListArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let query = Query {
        kind: args.kind,
        state: args.state,
        result: args.result,
        limit: Some(args.limit),
    };
    let activities = activity::list(&pool, &args.id, config.activity_retention, query).await?;
    emit(format, &activities, || {
        let rows: Vec<Vec<String>> = activities
            .iter()
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.kind.clone(),
                    a.state.clone(),
                    a.result.clone().unwrap_or_default(),
                    a.created_at.clone(),
                    a.completed_at.clone().unwrap_or_default(),
                    a.description.clone(),
                ]
            })
            .collect();
        output::table(
            &[
                "ID",
                "Type",
                "State",
                "Result",
                "Created",
                "Completed",
                "Description",
            ],
            &rows,
        )
    })
}

pub(super) async fn log(
    config: &Config,
    format: Format,
    args: ActivityLogArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let (activity, lines) = activity::log(&pool, &args.id, &args.activity_id).await?;
    let value = json!({ "activity": activity, "lines": lines });
    emit(format, &value, || {
        let mut out = format!("{}  {}\n", activity.id, activity.description);
        for line in &lines {
            out.push_str(&format!("{}  {}\n", line.at, line.line));
        }
        out
    })
}
