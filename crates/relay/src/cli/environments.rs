//! `environment:*` and `deployment:report`.

use relay_core::event::Transition;
use relay_core::EnvironmentStatus;
use relay_store::environments::EnvironmentFilter;
use serde_json::json;

use super::args::{
    ActivateArgs, EnvironmentArgs, EnvironmentInfoArgs, EnvironmentListArgs, ReportArgs,
};
use super::integrations::connect;
use super::output::{self, emit};
use super::{CliError, Format};
use crate::admin::environments::{self as admin, ReportInput, TransitionOutcome};
use crate::admin::views;
use crate::config::Config;

pub(super) async fn list(
    config: &Config,
    format: Format,
    args: EnvironmentListArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let filter = EnvironmentFilter {
        integration_id: args.integration.as_deref(),
        status: args.status,
        kind: args.kind,
    };
    let rows = relay_store::environments::list(&pool, filter).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| args.all || args.status.is_some() || r.status != EnvironmentStatus::Deleted)
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
        let headers = [
            "Integration",
            "Name",
            "Kind",
            "Status",
            "Parent",
            "Head",
            "PR",
        ];
        output::table(&headers, &table)
    })
}

pub(super) async fn info(
    config: &Config,
    format: Format,
    args: EnvironmentInfoArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let EnvironmentArgs { id, name } = &args.environment;
    let record = relay_store::integrations::get(&pool, id).await?;
    let env = admin::get(&pool, id, name).await?;
    let value = views::environment_detail(&env, admin::url(&record, &env));
    match args.property {
        Some(property) => {
            let field = value.get(&property).ok_or_else(|| {
                CliError::Invalid(format!(
                    "unknown property {property:?} (see `relay environment:info {id} {name}`)"
                ))
            })?;
            match format {
                Format::Json => println!("{field}"),
                Format::Table => println!("{}", output::scalar(field)),
            }
            Ok(())
        }
        None => emit(format, &value, || output::properties(&value)),
    }
}

pub(super) async fn url(config: &Config, args: EnvironmentArgs) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let record = relay_store::integrations::get(&pool, &args.id).await?;
    let env = admin::get(&pool, &args.id, &args.name).await?;
    let url = admin::url(&record, &env).ok_or_else(|| {
        CliError::NotFound(format!(
            "a URL for {:?}: no deployment reported one and the integration has no environment_url",
            args.name
        ))
    })?;
    println!("{url}");
    Ok(())
}

pub(super) async fn activate(
    config: &Config,
    format: Format,
    args: ActivateArgs,
) -> Result<(), CliError> {
    let transition = Transition::Activate {
        sync_data: args.sync_data,
    };
    run_transition(config, format, &args.environment, transition).await
}

pub(super) async fn deactivate(
    config: &Config,
    format: Format,
    args: EnvironmentArgs,
) -> Result<(), CliError> {
    run_transition(config, format, &args, Transition::Deactivate).await
}

async fn run_transition(
    config: &Config,
    format: Format,
    args: &EnvironmentArgs,
    transition: Transition,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let outcome = admin::transition(&pool, &args.id, &args.name, transition).await?;
    let verb = match transition {
        Transition::Activate { .. } => "activation",
        Transition::Deactivate => "deactivation",
    };
    let value = views::transition(outcome);
    emit(format, &value, || {
        match outcome {
        TransitionOutcome::Queued { delivery_id } => format!(
            "{verb} of {} queued (delivery {delivery_id}); `relay delivery:show {delivery_id}` shows what it did\n",
            args.name
        ),
        TransitionOutcome::Unchanged => format!("{}: nothing to do, already there\n", args.name),
    }
    })
}

pub(super) async fn report(
    config: &Config,
    format: Format,
    args: ReportArgs,
) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let input = ReportInput {
        commit: args.commit,
        state: args.state,
        url: args.url,
        log_url: args.log_url,
        description: args.description,
    };
    let EnvironmentArgs { id, name } = &args.environment;
    let recorded = admin::report(&pool, id, name, input).await?;
    let value = json!({
        "deployment": views::deployment(&recorded.deployment),
        "note": recorded.decision.note,
    });
    emit(format, &value, || {
        let mut out = format!(
            "deployment {} of {name} at {} recorded\n",
            recorded.deployment.state, recorded.deployment.commit
        );
        if let Some(note) = &recorded.decision.note {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    })
}
