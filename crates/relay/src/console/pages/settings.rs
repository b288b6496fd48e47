//! The integration settings form: its fields, and turning a posted form into the same
//! [`IntegrationInput`] the CLI and the API build, so `crate::admin` validates all three alike.
//!
//! Only fields that differ from the stored values become part of the input: an unchanged
//! repository must not re-register the webhook, and an unchanged (redacted) deploy remote
//! must not overwrite the real one. Secret fields are password inputs that start empty: left
//! empty they keep the secret, filled in they replace it. Their values are never sent back.

use relay_core::deployment::DeployFeedback;
use relay_core::settings::SettingsPatch;
use relay_core::{IntegrationType, Settings, TextEnum};
use relay_store::integrations::IntegrationRecord;
use serde::Deserialize;

use super::{enum_choices, Choice};
use crate::admin::integrations::{IntegrationInput, IntegrationView, SecretView};

/// The settings form as posted. Checkboxes are present when ticked; `flags` (a hidden field)
/// says the checkboxes were part of the form at all.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SettingsForm {
    pub(crate) repository: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) deploy_hook_secret: Option<String>,
    pub(crate) deploy_report_token: Option<String>,
    pub(crate) deploy_remote: Option<String>,
    pub(crate) deploy_hook_url: Option<String>,
    pub(crate) environment_url: Option<String>,
    pub(crate) deploy_feedback: Option<String>,
    pub(crate) default_branch: Option<String>,
    pub(crate) flags: Option<String>,
    pub(crate) fetch_branches: Option<String>,
    pub(crate) prune_branches: Option<String>,
    pub(crate) build_pull_requests: Option<String>,
    pub(crate) build_pull_requests_post_merge: Option<String>,
    pub(crate) resync_pull_requests: Option<String>,
    pub(crate) pull_requests_clone_parent_data: Option<String>,
    pub(crate) build_fork_pull_requests: Option<String>,
    pub(crate) register_webhook: Option<String>,
}

/// How a field is entered.
pub(crate) enum Input {
    Text,
    /// A secret: starts empty, its state shown beside it.
    Password,
    Checkbox,
    /// One of fixed values.
    Select(Vec<Choice>),
}

/// One field of the form as the template shows it.
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    pub(crate) input: Input,
    pub(crate) value: String,
    pub(crate) checked: bool,
    /// Password fields: whether a secret is stored ("set" / "unset"); never the secret.
    pub(crate) secret_state: Option<&'static str>,
    pub(crate) help: &'static str,
}

fn text(name: &'static str, label: &'static str, value: Option<&str>, help: &'static str) -> Field {
    Field {
        name,
        label,
        input: Input::Text,
        value: value.unwrap_or_default().to_owned(),
        checked: false,
        secret_state: None,
        help,
    }
}

fn secret(name: &'static str, label: &'static str, set: bool, help: &'static str) -> Field {
    Field {
        name,
        label,
        input: Input::Password,
        value: String::new(),
        checked: false,
        secret_state: Some(if set { "set" } else { "unset" }),
        help,
    }
}

fn flag(name: &'static str, label: &'static str, checked: bool, help: &'static str) -> Field {
    Field {
        name,
        label,
        input: Input::Checkbox,
        value: String::new(),
        checked,
        secret_state: None,
        help,
    }
}

const KEEP: &str = "Leave empty to keep the stored value; type a new one to replace it.";

type Getter = fn(&SettingsForm) -> &Option<String>;

/// What a text field shows: what was posted (after a refused save), else what is stored.
fn shown(stored: Option<&str>, posted: Option<&SettingsForm>, get: Getter) -> Option<String> {
    match posted.map(get) {
        Some(Some(value)) => Some(value.clone()),
        _ => stored.map(str::to_owned),
    }
}

fn is_set(secret: &SecretView) -> bool {
    !matches!(secret, SecretView::Hidden(None))
}

/// The text and secret fields, filled from the stored integration or, after a refused
/// save, from what was posted (secrets excepted).
pub(crate) fn text_fields(view: &IntegrationView, posted: Option<&SettingsForm>) -> Vec<Field> {
    let mut fields = connection_fields(view, posted);
    fields.extend(deploy_fields(view, posted));
    fields
}

fn connection_fields(view: &IntegrationView, posted: Option<&SettingsForm>) -> Vec<Field> {
    let t = |name, label, stored: Option<&str>, get: Getter, help| {
        text(name, label, shown(stored, posted, get).as_deref(), help)
    };
    let mut fields = vec![t(
        "repository",
        "Repository",
        Some(&view.repository),
        |f| &f.repository,
        "workspace/repository (Cloud) or PROJECT/repository (Server).",
    )];
    if view.kind == IntegrationType::Cloud {
        fields.extend([
            t(
                "key",
                "OAuth consumer key",
                view.key.as_deref(),
                |f| &f.key,
                "The key of the OAuth consumer (not a secret).",
            ),
            secret(
                "secret",
                "OAuth consumer secret",
                is_set(&view.secret),
                KEEP,
            ),
        ]);
    } else {
        fields.extend([
            t(
                "base_url",
                "Base URL",
                view.base_url.as_deref(),
                |f| &f.base_url,
                "The Bitbucket Server address, https://bitbucket.example.com.",
            ),
            t(
                "username",
                "Username",
                view.username.as_deref(),
                |f| &f.username,
                "Optional; empty clears it.",
            ),
            secret("token", "HTTP access token", is_set(&view.token), KEEP),
        ]);
    }
    fields.push(secret(
        "webhook_secret",
        "Webhook secret",
        is_set(&view.webhook_secret),
        KEEP,
    ));
    fields
}

fn deploy_fields(view: &IntegrationView, posted: Option<&SettingsForm>) -> Vec<Field> {
    let t = |name, label, stored: Option<&str>, get: Getter, help| {
        text(name, label, shown(stored, posted, get).as_deref(), help)
    };
    vec![
        secret(
            "deploy_hook_secret",
            "Deploy hook secret",
            is_set(&view.deploy_hook_secret),
            "whsec_ followed by base64 of at least 24 bytes. Leave empty to keep the stored one.",
        ),
        secret(
            "deploy_report_token",
            "Deployment report token",
            is_set(&view.deploy_report_token),
            "What the deploy side authenticates its deployment reports with. Leave empty to keep the stored one.",
        ),
        t(
            "deploy_remote",
            "Deploy remote",
            view.deploy_remote.as_deref(),
            |f| &f.deploy_remote,
            "A git remote the mirror pushes to; empty clears it. A password in it shows as *****: leave the field as it is to keep it.",
        ),
        t(
            "deploy_hook_url",
            "Deploy hook URL",
            view.deploy_hook_url.as_deref(),
            |f| &f.deploy_hook_url,
            "Where environment events are sent; empty clears it.",
        ),
        t(
            "environment_url",
            "Environment URL",
            view.environment_url.as_deref(),
            |f| &f.environment_url,
            "An http(s) URL template with {environment}; empty clears it.",
        ),
        deploy_feedback(view.settings.deploy_feedback, posted),
        t(
            "default_branch",
            "Default branch",
            view.settings.default_branch.as_deref(),
            |f| &f.default_branch,
            "The production branch; empty means the repository's default.",
        ),
    ]
}

/// The deploy feedback select: what was posted (after a refused save), else what is stored.
fn deploy_feedback(stored: DeployFeedback, posted: Option<&SettingsForm>) -> Field {
    let shown = posted
        .and_then(|form| form.deploy_feedback.as_deref())
        .and_then(DeployFeedback::parse_text)
        .unwrap_or(stored);
    Field {
        name: "deploy_feedback",
        label: "Deploy feedback",
        input: Input::Select(enum_choices(Some(shown))),
        value: String::new(),
        checked: false,
        secret_state: None,
        help: "hook: the deploy hook's 2xx means deployed. report: the hook's 2xx means deploying, and the deploy side's deployment report decides.",
    }
}

/// The checkboxes: the stored choices (not the effective ones), or what was posted.
pub(crate) fn flag_fields(record: &IntegrationRecord, posted: Option<&SettingsForm>) -> Vec<Field> {
    let value = |stored: bool, f: fn(&SettingsForm) -> &Option<String>| match posted {
        Some(form) if form.flags.is_some() => f(form).is_some(),
        _ => stored,
    };
    let stored = &record.settings;
    vec![
        flag(
            "fetch_branches",
            "Fetch branches",
            value(stored.fetch_branches, |f| &f.fetch_branches),
            "Mirror every branch, not only the default one.",
        ),
        flag(
            "prune_branches",
            "Prune branches",
            value(stored.prune_branches, |f| &f.prune_branches),
            "Remove environments of deleted branches (only with fetch branches).",
        ),
        flag(
            "build_pull_requests",
            "Build pull requests",
            value(stored.build_pull_requests, |f| &f.build_pull_requests),
            "An environment per open pull request.",
        ),
        flag(
            "build_pull_requests_post_merge",
            "Build pull requests post-merge",
            value(stored.build_pull_requests_post_merge, |f| {
                &f.build_pull_requests_post_merge
            }),
            "Build the merge into the target instead of the source head.",
        ),
        flag(
            "resync_pull_requests",
            "Resync pull requests",
            value(stored.resync_pull_requests, |f| &f.resync_pull_requests),
            "Copy the parent's data into a pull request environment on every build.",
        ),
        flag(
            "pull_requests_clone_parent_data",
            "Clone parent data for pull requests",
            value(stored.pull_requests_clone_parent_data, |f| {
                &f.pull_requests_clone_parent_data
            }),
            "New pull request environments start with the parent's data.",
        ),
        flag(
            "build_fork_pull_requests",
            "Build fork pull requests",
            value(stored.build_fork_pull_requests, |f| {
                &f.build_fork_pull_requests
            }),
            "Also pull requests from forks.",
        ),
    ]
}

/// `Some(posted)` when the posted text differs from what is stored (absent means unchanged).
fn changed(stored: Option<&str>, posted: &Option<String>) -> Option<String> {
    let posted = posted.as_ref()?;
    (posted.trim() != stored.unwrap_or_default().trim()).then(|| posted.clone())
}

/// A secret is replaced only when something was typed.
fn replaced(posted: &Option<String>) -> Option<String> {
    posted.as_ref().filter(|v| !v.is_empty()).cloned()
}

/// The change the form asks for, as the admin functions take it; `None` fields are kept.
/// `Err` names a value no form of the console sends (a hand-made request).
pub(crate) fn to_input(
    view: &IntegrationView,
    record: &IntegrationRecord,
    form: &SettingsForm,
) -> Result<IntegrationInput, String> {
    Ok(IntegrationInput {
        kind: None,
        repository: changed(Some(&view.repository), &form.repository),
        key: changed(view.key.as_deref(), &form.key),
        secret: replaced(&form.secret),
        base_url: changed(view.base_url.as_deref(), &form.base_url),
        username: changed(view.username.as_deref(), &form.username),
        token: replaced(&form.token),
        webhook_secret: replaced(&form.webhook_secret),
        deploy_hook_secret: replaced(&form.deploy_hook_secret),
        deploy_report_token: replaced(&form.deploy_report_token),
        settings: settings_patch(&record.settings, form)?,
        deploy_remote: changed(view.deploy_remote.as_deref(), &form.deploy_remote),
        deploy_hook_url: changed(view.deploy_hook_url.as_deref(), &form.deploy_hook_url),
        environment_url: changed(view.environment_url.as_deref(), &form.environment_url),
        register_webhook: Some(form.register_webhook.is_some()),
        ..IntegrationInput::default()
    })
}

/// The planner's rules the form changes, compared with the stored (not the effective) ones.
fn settings_patch(stored: &Settings, form: &SettingsForm) -> Result<SettingsPatch, String> {
    let flag = |stored: bool, posted: &Option<String>| {
        let wanted = posted.is_some();
        (form.flags.is_some() && wanted != stored).then_some(wanted)
    };
    let deploy_feedback = match form.deploy_feedback.as_deref() {
        None => None,
        Some(raw) => {
            let given = DeployFeedback::parse_text(raw).ok_or_else(|| {
                format!(
                    "deploy_feedback must be one of {}",
                    relay_core::text::spellings::<DeployFeedback>()
                )
            })?;
            (given != stored.deploy_feedback).then_some(given)
        }
    };
    Ok(SettingsPatch {
        fetch_branches: flag(stored.fetch_branches, &form.fetch_branches),
        prune_branches: flag(stored.prune_branches, &form.prune_branches),
        build_pull_requests: flag(stored.build_pull_requests, &form.build_pull_requests),
        build_pull_requests_post_merge: flag(
            stored.build_pull_requests_post_merge,
            &form.build_pull_requests_post_merge,
        ),
        resync_pull_requests: flag(stored.resync_pull_requests, &form.resync_pull_requests),
        pull_requests_clone_parent_data: flag(
            stored.pull_requests_clone_parent_data,
            &form.pull_requests_clone_parent_data,
        ),
        build_fork_pull_requests: flag(
            stored.build_fork_pull_requests,
            &form.build_fork_pull_requests,
        ),
        default_branch: changed(stored.default_branch.as_deref(), &form.default_branch),
        deploy_feedback,
        // The preview policies (drafts, filters, TTL, cap, comments) are set through the CLI
        // and the API; the form leaves them as they are.
        ..SettingsPatch::default()
    })
}

/// Whether the input changes anything at all (`register_webhook` is not a setting).
pub(crate) fn is_empty(input: &IntegrationInput) -> bool {
    let texts = [
        &input.repository,
        &input.key,
        &input.secret,
        &input.base_url,
        &input.username,
        &input.token,
        &input.webhook_secret,
        &input.deploy_hook_secret,
        &input.deploy_report_token,
        &input.deploy_remote,
        &input.deploy_hook_url,
        &input.environment_url,
    ];
    input.kind.is_none() && texts.iter().all(|t| t.is_none()) && input.settings.is_empty()
}
