//! `delivery:*` commands.

use serde_json::json;

use super::args::{DeliveryIdArg, DeliveryListArgs};
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::config::Config;

pub async fn list(config: &Config, format: Format, args: DeliveryListArgs) -> Result<(), CliError> {
    if args.limit < 1 {
        return Err(CliError::Invalid("--limit must be at least 1".into()));
    }
    let pool = connect(config).await?;
    let rows = relay_store::deliveries::list(
        &pool,
        args.integration.as_deref(),
        args.status.as_deref(),
        args.limit,
    )
    .await?;
    let values: Vec<_> = rows
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "integration_id": d.integration_id,
                "request_id": d.request_id,
                "event_key": d.event_key,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "received_at": d.received_at.to_rfc3339(),
                "processed_at": d.processed_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    emit(format, &values, || {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.integration_id.clone(),
                    d.event_key.clone(),
                    d.status.clone(),
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

pub async fn show(config: &Config, format: Format, args: DeliveryIdArg) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let d = relay_store::deliveries::get(&pool, args.id).await?;
    let value = json!({
        "id": d.id,
        "integration_id": d.integration_id,
        "request_id": d.request_id,
        "event_key": d.event_key,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "received_at": d.received_at.to_rfc3339(),
        "processed_at": d.processed_at.map(|t| t.to_rfc3339()),
        "headers": d.headers,
        "body_bytes": d.body.len(),
    });
    emit(format, &value, || output::properties(&value))
}
