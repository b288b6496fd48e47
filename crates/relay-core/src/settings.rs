//! An integration's rules, as the planner sees them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::deployment::DeployFeedback;
use crate::policy::{validate_pattern, DurationInput};

use crate::text::TextEnum;

/// Which Bitbucket product an integration talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationType {
    /// Bitbucket Cloud (bitbucket.org).
    #[serde(rename = "bitbucket")]
    Cloud,
    /// Bitbucket Server / Data Center.
    #[serde(rename = "bitbucket_server")]
    Server,
}

impl IntegrationType {
    /// The stored spelling (database, JSON, `--type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloud => "bitbucket",
            Self::Server => "bitbucket_server",
        }
    }

    pub const ALL: &'static [IntegrationType] = &[Self::Cloud, Self::Server];
}

/// Written by hand rather than by [`crate::text_enum!`]: parsing keeps its
/// [`SettingsError`], whose message admins see.
impl TextEnum for IntegrationType {
    const WHAT: &'static str = "integration type";
    const ALL: &'static [Self] = &[Self::Cloud, Self::Server];
    fn as_str(self) -> &'static str {
        IntegrationType::as_str(self)
    }
    fn parse_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl fmt::Display for IntegrationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationType {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bitbucket" => Ok(Self::Cloud),
            "bitbucket_server" => Ok(Self::Server),
            other => Err(SettingsError::UnknownType(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{field}: {value:?} is not a valid branch name")]
    BranchName { field: &'static str, value: String },
    #[error("unknown integration type {0:?}: expected \"bitbucket\" or \"bitbucket_server\"")]
    UnknownType(String),
    #[error("repository {0:?} must look like \"owner/repo\" (workspace/repo on Cloud, PROJECT/repo on Server)")]
    Repository(String),
    #[error("{field}: invalid regular expression (Rust regex syntax): {message}")]
    Pattern {
        field: &'static str,
        message: String,
    },
    #[error("{field}: {value:?} is not a valid duration: {message}")]
    Duration {
        field: &'static str,
        value: String,
        message: String,
    },
}

/// Checks a `workspace/repo` (Cloud) or `PROJECT/repo` (Server) repository path: the
/// integration's own and, before it goes into a git URL, a fork's from a payload.
///
/// Only the characters Bitbucket allows in workspace, project and repository names
/// (letters, digits, `-`, `_`, `.`), so a name cannot add a path (`../x`), a query (`?`), a
/// fragment (`#`) or an option (a leading `-`) to the URL it is put in. Personal Server
/// projects look like `~user/repo`, so `~` is allowed at the start.
pub fn validate_repository(repository: &str) -> Result<(), SettingsError> {
    let bad = || SettingsError::Repository(repository.chars().take(200).collect());
    let (owner, name) = repository.split_once('/').ok_or_else(bad)?;
    let owner_body = owner.strip_prefix('~').unwrap_or(owner);
    let valid_part = |part: &str| {
        !part.is_empty()
            && part.len() <= 128
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if valid_part(owner_body) && valid_part(name) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks a branch name the way git's `check-ref-format --branch` would refuse it (plus
/// a leading `-`, which git would read as an option); returns it trimmed.
pub fn validate_branch_name(field: &'static str, raw: &str) -> Result<String, SettingsError> {
    let name = raw.trim();
    let bad = name.is_empty()
        || name.starts_with('-')
        || name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with(".lock")
        || name.ends_with('.')
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(SettingsError::BranchName {
            field,
            value: raw.to_owned(),
        });
    }
    Ok(name.to_owned())
}

/// The per-integration rules the planner applies.
///
/// Field names follow the hosted platform's CLI. `prune_branches` holds what the admin asked
/// for; [`Settings::effective_prune_branches`] is what the planner obeys, because pruning
/// without fetching would delete every branch environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub fetch_branches: bool,
    pub prune_branches: bool,
    pub build_pull_requests: bool,
    pub build_pull_requests_post_merge: bool,
    pub resync_pull_requests: bool,
    pub pull_requests_clone_parent_data: bool,
    /// Pull requests whose source lives in another repository (a fork) are untrusted code:
    /// they get no environment unless this is on.
    pub build_fork_pull_requests: bool,
    /// The production environment's branch; `None` until learnt from Bitbucket.
    pub default_branch: Option<String>,
    /// Whether the deploy hook's 2xx or the deploy side's report means "deployed".
    pub deploy_feedback: DeployFeedback,
    /// One comment per pull-request environment on its pull request, edited in place.
    pub pull_request_comments: bool,
    /// Draft pull requests get environments; off: none until ready for review.
    pub build_draft_pull_requests: bool,
    /// Branches (and pull-request sources) that get environments: the whole name must match
    /// this regular expression. `None`: every branch.
    pub branch_include: Option<String>,
    /// Branches (and pull-request sources) that never get environments (whole-name match).
    pub branch_exclude: Option<String>,
    /// Pull requests get environments only when their target matches (whole-name match).
    pub pull_request_target_include: Option<String>,
    /// Seconds without a push or deployment after which an active non-production
    /// environment is deactivated; `None`: never.
    pub environment_idle_ttl: Option<u64>,
    /// Most active non-production environments at once; `None`: no limit.
    pub max_active_environments: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fetch_branches: true,
            prune_branches: true,
            build_pull_requests: true,
            build_pull_requests_post_merge: false,
            resync_pull_requests: false,
            pull_requests_clone_parent_data: true,
            build_fork_pull_requests: false,
            default_branch: None,
            deploy_feedback: DeployFeedback::Hook,
            pull_request_comments: true,
            build_draft_pull_requests: true,
            branch_include: None,
            branch_exclude: None,
            pull_request_target_include: None,
            environment_idle_ttl: None,
            max_active_environments: None,
        }
    }
}

/// A change to [`Settings`]: every field optional, so one type serves the CLI's flags, the
/// admin API's JSON and the console's form. `default_branch: Some("")` clears the branch
/// (it is then learnt from Bitbucket again).
///
/// Adding a setting means a field here and in [`Settings`] (with its default), a migration
/// column, its mapping in relay-store's `integrations` module and its CLI flag; the API and
/// every view pick it up from these types.
///
/// Unknown fields are not refused here: the patch is flattened into larger inputs, which
/// refuse them (serde's `deny_unknown_fields` does not combine with `flatten`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsPatch {
    pub fetch_branches: Option<bool>,
    pub prune_branches: Option<bool>,
    pub build_pull_requests: Option<bool>,
    pub build_pull_requests_post_merge: Option<bool>,
    pub resync_pull_requests: Option<bool>,
    pub pull_requests_clone_parent_data: Option<bool>,
    pub build_fork_pull_requests: Option<bool>,
    pub default_branch: Option<String>,
    pub deploy_feedback: Option<DeployFeedback>,
    pub pull_request_comments: Option<bool>,
    pub build_draft_pull_requests: Option<bool>,
    pub branch_include: Option<String>,
    pub branch_exclude: Option<String>,
    pub pull_request_target_include: Option<String>,
    /// Seconds, or text such as `90s`, `72h`, `7d`.
    pub environment_idle_ttl: Option<DurationInput>,
    pub max_active_environments: Option<u32>,
}

impl SettingsPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Settings {
    /// Applies `patch`, checking every given value first so a refused patch changes nothing.
    pub fn apply(&mut self, patch: SettingsPatch) -> Result<(), SettingsError> {
        let default_branch = match patch.default_branch {
            None => None,
            Some(raw) if raw.trim().is_empty() => Some(None),
            Some(raw) => Some(Some(validate_branch_name("default_branch", raw.trim())?)),
        };
        let pattern = |field, raw: &Option<String>| {
            raw.as_deref()
                .map(|raw| validate_pattern(field, raw))
                .transpose()
        };
        let branch_include = pattern("branch_include", &patch.branch_include)?;
        let branch_exclude = pattern("branch_exclude", &patch.branch_exclude)?;
        let target_include = pattern(
            "pull_request_target_include",
            &patch.pull_request_target_include,
        )?;
        let idle_ttl = patch
            .environment_idle_ttl
            .as_ref()
            .map(|ttl| ttl.seconds("environment_idle_ttl"))
            .transpose()?;
        let flags = [
            (patch.fetch_branches, &mut self.fetch_branches),
            (patch.prune_branches, &mut self.prune_branches),
            (patch.build_pull_requests, &mut self.build_pull_requests),
            (
                patch.build_pull_requests_post_merge,
                &mut self.build_pull_requests_post_merge,
            ),
            (patch.resync_pull_requests, &mut self.resync_pull_requests),
            (
                patch.pull_requests_clone_parent_data,
                &mut self.pull_requests_clone_parent_data,
            ),
            (
                patch.build_fork_pull_requests,
                &mut self.build_fork_pull_requests,
            ),
            (patch.pull_request_comments, &mut self.pull_request_comments),
            (
                patch.build_draft_pull_requests,
                &mut self.build_draft_pull_requests,
            ),
        ];
        for (given, field) in flags {
            if let Some(value) = given {
                *field = value;
            }
        }
        if let Some(branch) = default_branch {
            self.default_branch = branch;
        }
        if let Some(feedback) = patch.deploy_feedback {
            self.deploy_feedback = feedback;
        }
        let patterns = [
            (branch_include, &mut self.branch_include),
            (branch_exclude, &mut self.branch_exclude),
            (target_include, &mut self.pull_request_target_include),
        ];
        for (given, field) in patterns {
            if let Some(value) = given {
                *field = value;
            }
        }
        if let Some(ttl) = idle_ttl {
            self.environment_idle_ttl = ttl;
        }
        if let Some(max) = patch.max_active_environments {
            self.max_active_environments = (max > 0).then_some(max);
        }
        Ok(())
    }

    /// The settings, changed from `self` to `after`, whose change decides about environments
    /// that exist already (what a filter newly excludes, a draft to stop, a slot freed):
    /// planned by the next reconciliation.
    pub fn changes_about_existing_environments(&self, after: &Settings) -> Vec<&'static str> {
        let changed = [
            (
                "branch_include",
                self.branch_include != after.branch_include,
            ),
            (
                "branch_exclude",
                self.branch_exclude != after.branch_exclude,
            ),
            (
                "pull_request_target_include",
                self.pull_request_target_include != after.pull_request_target_include,
            ),
            (
                "build_draft_pull_requests",
                self.build_draft_pull_requests != after.build_draft_pull_requests,
            ),
            (
                "max_active_environments",
                self.max_active_environments != after.max_active_environments,
            ),
        ];
        changed
            .into_iter()
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect()
    }

    /// Prune is forced off when branches are not fetched, whatever was asked for.
    pub fn effective_prune_branches(&self) -> bool {
        self.fetch_branches && self.prune_branches
    }

    /// A human-readable reason when the requested prune setting is overridden.
    pub fn prune_override_notice(&self) -> Option<&'static str> {
        (self.prune_branches && !self.fetch_branches)
            .then_some("prune_branches is forced off because fetch_branches is off")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_is_forced_off_without_fetch() {
        let table = [
            (true, true, true),
            (true, false, false),
            (false, true, false),
            (false, false, false),
        ];
        for (fetch, prune, effective) in table {
            let settings = Settings {
                fetch_branches: fetch,
                prune_branches: prune,
                ..Settings::default()
            };
            assert_eq!(
                settings.effective_prune_branches(),
                effective,
                "{fetch} {prune}"
            );
            assert_eq!(
                settings.prune_override_notice().is_some(),
                prune && !fetch,
                "{fetch} {prune}"
            );
        }
    }

    #[test]
    fn types_round_trip() {
        for t in IntegrationType::ALL {
            assert_eq!(t.as_str().parse::<IntegrationType>(), Ok(*t));
            assert_eq!(IntegrationType::parse_text(t.as_str()), Some(*t));
            let json = serde_json::to_string(t).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(
            <IntegrationType as TextEnum>::ALL,
            IntegrationType::ALL,
            "one list of variants"
        );
        assert!("github".parse::<IntegrationType>().is_err());
    }

    #[test]
    fn branches() {
        for ok in ["main", "release/1.x", "feature/JIRA-1_x", " main "] {
            assert!(validate_branch_name("b", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "x.lock", "a/", "a\u{7}"] {
            assert!(validate_branch_name("b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_refused_patch_changes_nothing() {
        let mut settings = Settings::default();
        let patch = SettingsPatch {
            fetch_branches: Some(false),
            default_branch: Some("a..b".into()),
            ..SettingsPatch::default()
        };
        assert!(settings.apply(patch).is_err());
        assert_eq!(settings, Settings::default());
        let patch = SettingsPatch {
            fetch_branches: Some(false),
            default_branch: Some(" trunk ".into()),
            ..SettingsPatch::default()
        };
        assert!(settings.apply(patch).is_ok());
        assert!(!settings.fetch_branches);
        assert_eq!(settings.default_branch.as_deref(), Some("trunk"));
        let clear = SettingsPatch {
            default_branch: Some(String::new()),
            ..SettingsPatch::default()
        };
        assert!(settings.apply(clear).is_ok());
        assert_eq!(settings.default_branch, None);
    }

    #[test]
    fn policies_apply_and_clear() {
        let mut settings = Settings::default();
        assert!(settings.pull_request_comments && settings.build_draft_pull_requests);
        let patch = SettingsPatch {
            build_draft_pull_requests: Some(false),
            branch_include: Some("feature/.*".into()),
            branch_exclude: Some("(".into()),
            ..SettingsPatch::default()
        };
        let err = settings.apply(patch).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("branch_exclude: invalid regular expression"));
        assert_eq!(
            settings,
            Settings::default(),
            "a refused patch changes nothing"
        );
        let patch = SettingsPatch {
            build_draft_pull_requests: Some(false),
            branch_include: Some("feature/.*".into()),
            environment_idle_ttl: Some(DurationInput::Text("72h".into())),
            max_active_environments: Some(3),
            ..SettingsPatch::default()
        };
        settings.apply(patch).unwrap();
        assert!(!settings.build_draft_pull_requests);
        assert_eq!(settings.branch_include.as_deref(), Some("feature/.*"));
        assert_eq!(settings.environment_idle_ttl, Some(72 * 3600));
        assert_eq!(settings.max_active_environments, Some(3));
        let clear = SettingsPatch {
            branch_include: Some(String::new()),
            environment_idle_ttl: Some(DurationInput::Seconds(0)),
            max_active_environments: Some(0),
            ..SettingsPatch::default()
        };
        settings.apply(clear).unwrap();
        assert_eq!(settings.branch_include, None);
        assert_eq!(settings.environment_idle_ttl, None);
        assert_eq!(settings.max_active_environments, None);
        let bad_ttl = SettingsPatch {
            environment_idle_ttl: Some(DurationInput::Text("forever".into())),
            ..SettingsPatch::default()
        };
        assert!(settings.apply(bad_ttl).is_err());
    }

    #[test]
    fn repository_paths() {
        for ok in ["ws/repo", "PROJ/my-repo.git2", "~jdoe/repo", "a_b/c.d"] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "repo",
            "/repo",
            "ws/",
            "ws/a/b",
            "ws/..",
            "w s/r",
            "ws/r?x",
            "../../../evil",
            "ws/x.git?y=#",
            "-ws/repo",
            "ws/-repo",
            "~-x/repo",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }
}
