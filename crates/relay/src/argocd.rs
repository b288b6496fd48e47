//! The Argo CD ApplicationSet plugin generator's parameters: one flat map of strings per
//! environment, with the pull-request generator's names so its templates port over. Pure:
//! the HTTP endpoint (`http::argocd`) reads the rows, the processor asks
//! [`output_changed`] whether a refresh is due.

use relay_core::{Environment, EnvironmentKind, JobSpec};
use relay_store::argocd::GeneratorRow;
use serde_json::{Map, Value};

/// The name the pull-request generator truncates slugs to (`slug.MaxLength = 50` in Argo CD),
/// leaving room for a suffix within a 63-character DNS label.
const SLUG_MAX: usize = 50;

/// The parameters of one environment. Every key is always present (an empty string when it
/// does not apply, e.g. `number` of a branch environment), so templates rendered with
/// `missingkey=error` work for every kind.
pub fn parameters(row: &GeneratorRow) -> Map<String, Value> {
    let pull_request = row.kind == EnvironmentKind::PullRequest;
    let (branch, target_branch) = if pull_request {
        (
            row.pr_source_branch.as_deref(),
            row.pr_target_branch.as_deref(),
        )
    } else {
        (row.branch.as_deref(), None)
    };
    let (branch, target_branch) = (branch.unwrap_or(""), target_branch.unwrap_or(""));
    let head = row.head_commit.as_deref().unwrap_or("");
    let number = row.pr_id.map(|id| id.to_string()).unwrap_or_default();
    let fields = [
        ("number", number),
        ("branch", branch.to_owned()),
        ("branch_slug", slug(branch)),
        ("target_branch", target_branch.to_owned()),
        ("target_branch_slug", slug(target_branch)),
        ("head_sha", head.to_owned()),
        ("head_short_sha", prefix(head, 8).to_owned()),
        ("head_short_sha_7", prefix(head, 7).to_owned()),
        ("environment", row.name.clone()),
        ("kind", row.kind.to_string()),
        ("status", row.status.to_string()),
        ("integration", row.integration_id.clone()),
        ("repository", row.repository.clone()),
        ("url", environment_url(row).unwrap_or_default()),
        ("ref", deploy_ref(row)),
        (
            "deploy_remote",
            row.deploy_remote
                .as_deref()
                .map(without_credentials)
                .unwrap_or_default(),
        ),
    ];
    fields
        .into_iter()
        .map(|(key, value)| (key.to_owned(), Value::String(value)))
        .collect()
}

/// The environment's URL, as `environment:url` gives it: the last reported deployment URL,
/// else the integration's `environment_url` template with `{environment}` replaced.
pub fn environment_url(row: &GeneratorRow) -> Option<String> {
    relay_core::environment::environment_url(
        row.last_deployment_url.as_deref(),
        row.environment_url.as_deref(),
        &row.name,
    )
}

/// The ref the environment has on the deploy remote (see `worker::jobs::git`): branches
/// keep their name, a pull request is pushed as the branch named like its environment
/// (`refs/heads/pr-<id>`).
pub fn deploy_ref(row: &GeneratorRow) -> String {
    if row.kind == EnvironmentKind::PullRequest {
        return format!("refs/heads/{}", row.name);
    }
    row.branch
        .as_deref()
        .map(relay_git::branch_ref)
        .unwrap_or_default()
}

/// A remote URL with its userinfo removed: user names are often tokens too
/// (`x-token-auth:...@`). Anything that is not a URL with userinfo (an scp-like
/// `git@host:path`, whose `git@` is no secret) is shown as stored.
pub fn without_credentials(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

fn prefix(text: &str, n: usize) -> &str {
    text.get(..n).unwrap_or(text)
}

/// Argo CD's branch slug (gosimple/slug with `_` as `-`, at most 50 characters, cut at a
/// dash when possible), for ASCII branch names. Other characters become `-` where Argo CD
/// would transliterate them.
pub fn slug(branch: &str) -> String {
    let mut out = String::with_capacity(branch.len());
    let substituted = branch
        .trim()
        .replace('_', "-")
        .replace('&', "and")
        .replace('@', "at")
        .replace(['"', '\'', '\u{2019}'], "");
    for c in substituted.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if out.len() <= SLUG_MAX {
        return out.to_owned();
    }
    match out[..=SLUG_MAX].rfind('-') {
        Some(cut) => out[..cut].to_owned(),
        None => out[..SLUG_MAX].to_owned(),
    }
}

/// Whether the plugin generator's answer may differ after a batch: an environment appeared,
/// went away, or changed a listed field, or git work was queued (a ref moves on the deploy
/// remote, and a build may mark the environment failed).
pub fn output_changed<'a>(
    before: &[Environment],
    after: &[Environment],
    mut jobs: impl Iterator<Item = &'a JobSpec>,
) -> bool {
    let git_work = jobs.any(|job| {
        matches!(
            job,
            JobSpec::MirrorBranch { .. }
                | JobSpec::DeleteRef { .. }
                | JobSpec::BuildPullRequest { .. }
        )
    });
    git_work
        || after.iter().any(|env| {
            let old = before.iter().find(|b| b.name == env.name);
            old.is_none_or(|old| visible(old) != visible(env))
        })
}

type Visible<'a> = (
    EnvironmentKind,
    relay_core::EnvironmentStatus,
    Option<&'a str>,
    Option<&'a str>,
    Option<(u64, &'a str, &'a str)>,
);

fn visible(env: &Environment) -> Visible<'_> {
    (
        env.kind,
        env.status,
        env.branch.as_deref(),
        env.head_commit.as_ref().map(|c| c.as_str()),
        env.pr
            .as_ref()
            .map(|pr| (pr.id, pr.source_branch.as_str(), pr.target_branch.as_str())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, name: &str) -> GeneratorRow {
        let kind: EnvironmentKind = kind.parse().unwrap();
        GeneratorRow {
            integration_id: "acme-widgets".into(),
            repository: "acme/widgets".into(),
            deploy_remote: Some("https://x-token-auth:s3cret@git.example.com/deploy.git".into()),
            environment_url: Some("https://{environment}.preview.example.com".into()),
            last_deployment_url: None,
            name: name.into(),
            kind,
            status: relay_core::EnvironmentStatus::Active,
            branch: None,
            head_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            pr_id: None,
            pr_source_branch: None,
            pr_target_branch: None,
        }
    }

    #[test]
    fn pull_request_parameters() {
        let mut pr = row("pull_request", "pr-7");
        pr.pr_id = Some(7);
        pr.pr_source_branch = Some("feature/Login_Form".into());
        pr.pr_target_branch = Some("main".into());
        let p = parameters(&pr);
        let get = |k: &str| p[k].as_str().unwrap_or("<not a string>").to_owned();
        assert_eq!(get("number"), "7");
        assert_eq!(get("branch"), "feature/Login_Form");
        assert_eq!(get("branch_slug"), "feature-login-form");
        assert_eq!(get("target_branch_slug"), "main");
        assert_eq!(get("head_short_sha"), "01234567");
        assert_eq!(get("head_short_sha_7"), "0123456");
        assert_eq!(get("ref"), "refs/heads/pr-7");
        assert_eq!(get("url"), "https://pr-7.preview.example.com");
        assert_eq!(get("deploy_remote"), "https://git.example.com/deploy.git");
        assert!(p.values().all(Value::is_string));
    }

    #[test]
    fn branch_parameters_have_every_key() {
        let mut branch = row("branch", "feature-login-1a2b3c4d");
        branch.branch = Some("feature/login".into());
        branch.head_commit = None;
        branch.deploy_remote = None;
        branch.environment_url = None;
        let p = parameters(&branch);
        assert_eq!(p["ref"], "refs/heads/feature/login");
        assert_eq!(p["number"], "");
        assert_eq!(p["target_branch"], "");
        assert_eq!(p["head_short_sha"], "");
        assert_eq!(p["url"], "");
        assert_eq!(p.len(), parameters(&row("pull_request", "pr-1")).len());
    }

    #[test]
    fn slugs_follow_argo_cd() {
        assert_eq!(slug("Feature/ABC_def  x"), "feature-abc-def-x");
        assert_eq!(slug("--a--b--"), "a-b");
        assert_eq!(slug("fix&test@home"), "fixandtestathome");
        assert_eq!(slug("it's \"done\""), "its-done");
        let long = format!("{}-tail-of-the-branch-name", "a".repeat(40));
        assert_eq!(slug(&long), format!("{}-tail-of", "a".repeat(40)));
        assert_eq!(slug(&"b".repeat(70)), "b".repeat(50));
    }

    #[test]
    fn credentials_are_stripped() {
        assert_eq!(
            without_credentials("https://user@host/r.git"),
            "https://host/r.git"
        );
        assert_eq!(without_credentials("git@host:r.git"), "git@host:r.git");
        assert_eq!(without_credentials("/srv/git/r.git"), "/srv/git/r.git");
    }
}
