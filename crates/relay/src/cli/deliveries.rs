//! `delivery:*` commands.

use serde_json::json;

use super::args::{DeliveryIdArg, DeliveryListArgs};
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::admin::views;
use crate::config::Config;

pub(super) async fn list(
    config: &Config,
    format: Format,
    args: DeliveryListArgs,
) -> Result<(), CliError> {
    if args.limit < 1 {
        return Err(CliError::Invalid("--limit must be at least 1".into()));
    }
    let pool = connect(config).await?;
    let rows =
        relay_store::deliveries::list(&pool, args.integration.as_deref(), args.status, args.limit)
            .await?;
    let values: Vec<_> = rows.iter().map(views::delivery_summary).collect();
    emit(format, &values, || {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.integration_id.clone(),
                    d.event_key.clone(),
                    d.status.to_string(),
                    d.received_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    d.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &["ID", "Integration", "Event", "Status", "Received", "Error"],
            &rows,
        )
    })
}

pub(super) async fn show(
    config: &Config,
    format: Format,
    args: DeliveryIdArg,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let d = relay_store::deliveries::get(&pool, args.id).await?;
    let jobs = relay_store::jobs::list(&pool, None, Some(d.id), None, 1000).await?;
    let value = views::delivery_detail(&d, &jobs);
    emit(format, &value, || {
        let mut out = output::properties(&value);
        if let Some(plan) = &d.decisions {
            out.push_str("\nDecisions:\n");
            out.push_str(&describe_plan(plan));
        }
        out
    })
}

/// One line per change, job and note, for people reading `delivery:show`.
fn describe_plan(plan: &serde_json::Value) -> String {
    let mut out = String::new();
    let list = |key: &str| {
        plan.get(key)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    for change in list("changes") {
        let op = change["op"].as_str().unwrap_or("?");
        let name = change["name"]
            .as_str()
            .or(change["environment"]["name"].as_str())
            .unwrap_or("?");
        out.push_str(&format!("  environment {name}: {op}\n"));
    }
    for job in list("jobs") {
        out.push_str(&format!(
            "  job {}: {}\n",
            job["kind"].as_str().unwrap_or("?"),
            job
        ));
    }
    for note in list("notes") {
        out.push_str(&format!("  note: {}\n", note.as_str().unwrap_or_default()));
    }
    if out.is_empty() {
        out.push_str("  (nothing to do)\n");
    }
    out
}

pub(super) async fn redeliver(
    config: &Config,
    format: Format,
    args: DeliveryIdArg,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    relay_store::queue::redeliver(&pool, args.id).await?;
    emit(format, &json!({ "redelivered": args.id }), || {
        format!("Delivery {} queued to be planned again\n", args.id)
    })
}
