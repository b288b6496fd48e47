//! `integration:*` commands.

use relay_store::PgPool;
use secrecy::ExposeSecret;
use serde_json::json;

use super::args::{AddArgs, DeleteArgs, GetArgs, IdArg, UpdateArgs};
use super::output::{self, emit};
use super::{CliError, Format};
use crate::admin::integrations::{self as admin, IntegrationView};
use crate::config::Config;
use crate::secrets::SecretKey;

pub(super) async fn connect(config: &Config) -> Result<PgPool, CliError> {
    let url = config.require_database_url()?;
    let pool = relay_store::connect(
        url.expose_secret(),
        &relay_store::PoolOptions {
            max_connections: 2,
            acquire_timeout: config.db_acquire_timeout,
        },
    )?;
    Ok(pool)
}

pub(super) async fn add(config: &Config, format: Format, args: AddArgs) -> Result<(), CliError> {
    let key = SecretKey::from_config(config.secret_key.as_ref())?;
    let pool = connect(config).await?;
    let created = crate::admin::managed::add_with_bitbucket(
        &pool,
        &key,
        &clients(config),
        &config.public_base_url(),
        args.fields.into_input(Some(args.kind)),
    )
    .await?;
    let view = admin::view(&created.record, &config.public_base_url(), None)?;
    // The deploy side needs its signing secret too; shown here once when a hook is set.
    let deploy_hook_secret = match &view.deploy_hook_url {
        Some(_) => Some(
            key.decrypt(
                &created.record.id,
                crate::secrets::SecretField::DeployHookSecret,
                &created.record.deploy_hook_secret_ciphertext,
            )?
            .expose_secret()
            .to_owned(),
        ),
        None => None,
    };
    let value = json!({
        "id": view.id,
        "type": view.kind,
        "repository": view.repository,
        "hook_url": view.hook_url,
        "webhook_secret": created.webhook_secret,
        "deploy_hook_secret": deploy_hook_secret,
        "deploy_report_token": created.deploy_report_token,
        "prune_branches": view.settings.prune_branches,
        "warnings": warnings(config, &view),
    });
    emit(format, &value, || {
        let mut out = format!(
            "Created integration {}\n\nWebhook for {} (registered on Bitbucket unless --register-webhook=false; the secret is shown only now):\n  URL:    {}\n  Secret: {}\n",
            view.id, view.repository, view.hook_url, created.webhook_secret
        );
        if let Some(secret) = &deploy_hook_secret {
            out.push_str(&format!(
                "\nDeploy hook {} receives events signed with (Standard Webhooks):\n  Secret: {secret}\n",
                view.deploy_hook_url.as_deref().unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "\nDeployment reports (POST .../environments/NAME/deployments, relay deployment:report) authenticate with:\n  Token:  {}\n",
            created.deploy_report_token
        ));
        for warning in warnings(config, &view) {
            out.push_str(&format!("\nwarning: {warning}\n"));
        }
        out
    })
}

fn warnings(config: &Config, view: &IntegrationView) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.public_url.is_none() {
        warnings.push(format!(
            "RELAY_PUBLIC_URL is not set, so the hook URL uses the listen address {}; Bitbucket must be able to reach it",
            config.listen
        ));
    }
    if let Some(problem) = crate::admin::managed::unreachable_public_url(&config.public_base_url())
    {
        warnings.push(problem);
    }
    if let Some(note) = view.prune_branches_note {
        warnings.push(note.to_owned());
    }
    if view.settings.prune_branches {
        warnings.push(
            "prune_branches is on: environments of branches that do not exist in Bitbucket will be deleted on the first sync"
                .to_owned(),
        );
    }
    warnings
}

pub(super) async fn update(
    config: &Config,
    format: Format,
    args: UpdateArgs,
) -> Result<(), CliError> {
    let key = SecretKey::from_config(config.secret_key.as_ref())?;
    let pool = connect(config).await?;
    let mut input = args.fields.into_input(None);
    input.rotate_webhook_secret = args.rotate_webhook_secret.then_some(true);
    input.webhook_secret_grace = args.webhook_secret_grace;
    input.rotate_deploy_hook_secret = args.rotate_deploy_hook_secret.then_some(true);
    input.deploy_hook_secret_grace = args.deploy_hook_secret_grace;
    let base = config.public_base_url();
    let clients = clients(config);
    let target = crate::admin::managed::Target {
        pool: &pool,
        key: &key,
        clients: &clients,
        public_base_url: &base,
    };
    let updated = crate::admin::rotation::update_rotating(&target, &args.id, input).await?;
    let mut view = admin::view(&updated.record, &base, None)?;
    admin::with_circuits(&pool, std::slice::from_mut(&mut view)).await?;
    if let Some(note) = view.prune_branches_note {
        eprintln!("warning: {note}");
    }
    let mut value = serde_json::to_value(&view)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot encode output: {e}")))?;
    // A rotated secret is shown here once, in clear; afterwards only with --show-secret.
    updated.reveal_rotated(&mut value);
    emit(format, &value, || output::properties(&value))
}

pub(super) async fn get(config: &Config, format: Format, args: GetArgs) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let record = relay_store::integrations::get(&pool, &args.id).await?;
    let key = if args.show_secret {
        Some(SecretKey::from_config(config.secret_key.as_ref())?)
    } else {
        None
    };
    let mut view = admin::view(&record, &config.public_base_url(), key.as_ref())?;
    admin::with_circuits(&pool, std::slice::from_mut(&mut view)).await?;
    match args.property {
        Some(property) => {
            let value = serde_json::to_value(&view)
                .map_err(|e| CliError::Other(anyhow::anyhow!("cannot encode output: {e}")))?;
            let field = value.get(&property).ok_or_else(|| {
                CliError::Invalid(format!(
                    "unknown property {property:?} (see `relay integration:get {}`)",
                    args.id
                ))
            })?;
            match format {
                Format::Json => println!("{field}"),
                Format::Table => println!("{}", output::scalar(field)),
            }
            Ok(())
        }
        None => print_view(format, &view),
    }
}

fn print_view(format: Format, view: &IntegrationView) -> Result<(), CliError> {
    let value = serde_json::to_value(view)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot encode output: {e}")))?;
    emit(format, &value, || output::properties(&value))
}

pub(super) async fn list(config: &Config, format: Format) -> Result<(), CliError> {
    let pool = connect(config).await?;
    let records = relay_store::integrations::list(&pool).await?;
    let base = config.public_base_url();
    let mut views = records
        .iter()
        .map(|r| admin::view(r, &base, None))
        .collect::<Result<Vec<_>, _>>()?;
    admin::with_circuits(&pool, &mut views).await?;
    emit(format, &views, || {
        let rows: Vec<Vec<String>> = views
            .iter()
            .map(|v| {
                vec![
                    v.id.clone(),
                    v.kind.to_string(),
                    v.repository.clone(),
                    v.settings.fetch_branches.to_string(),
                    v.settings.prune_branches.to_string(),
                    v.settings.build_pull_requests.to_string(),
                    v.settings.build_pull_requests_post_merge.to_string(),
                ]
            })
            .collect();
        output::table(
            &[
                "ID",
                "Type",
                "Repository",
                "Fetch",
                "Prune",
                "PRs",
                "Post-merge",
            ],
            &rows,
        )
    })
}

pub(super) async fn delete(
    config: &Config,
    format: Format,
    args: DeleteArgs,
) -> Result<(), CliError> {
    let key = SecretKey::from_config(config.secret_key.as_ref())?;
    let pool = connect(config).await?;
    let warning = crate::admin::managed::delete_with_bitbucket(
        &pool,
        &key,
        &clients(config),
        &config.public_base_url(),
        &args.id,
        args.register_webhook.unwrap_or(true),
    )
    .await?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    emit(format, &json!({ "deleted": args.id }), || {
        format!("Deleted integration {}\n", args.id)
    })
}

pub(super) async fn resync(config: &Config, format: Format, args: IdArg) -> Result<(), CliError> {
    let pool = connect(config).await?;
    relay_store::integrations::get(&pool, &args.id).await?;
    let job = relay_core::JobSpec::Reconcile {
        reason: "requested with integration:resync".into(),
    };
    relay_store::jobs::enqueue(&pool, &args.id, None, &job).await?;
    emit(format, &json!({ "resync_queued": args.id }), || {
        format!(
            "Resync of {} queued; `relay job:list --integration {}` shows it\n",
            args.id, args.id
        )
    })
}

/// Bitbucket clients with the configured Cloud addresses.
pub(super) fn clients(config: &Config) -> crate::bitbucket::Clients {
    crate::bitbucket::Clients::new(
        config.cloud_urls(),
        relay_bitbucket::ClientOptions::default(),
    )
}

/// Prints every check with pass/fail and a hint; exits 4 when any failed.
pub(super) async fn validate(config: &Config, format: Format, args: IdArg) -> Result<(), CliError> {
    let key = SecretKey::from_config(config.secret_key.as_ref())?;
    let pool = connect(config).await?;
    let record = relay_store::integrations::get(&pool, &args.id).await?;
    let checks = crate::admin::bitbucket_side::validate(
        &clients(config),
        &key,
        &config.public_base_url(),
        &record,
    )
    .await;
    let failed = checks.iter().filter(|c| !c.passed).count();
    emit(format, &checks, || {
        let mut out = String::new();
        for check in &checks {
            let mark = if check.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("[{mark}] {}: {}\n", check.check, check.detail));
            if let Some(hint) = &check.hint {
                out.push_str(&format!("       fix: {hint}\n"));
            }
        }
        out
    })?;
    if failed > 0 {
        return Err(CliError::ValidationFailed(format!(
            "{failed} check(s) failed"
        )));
    }
    Ok(())
}
