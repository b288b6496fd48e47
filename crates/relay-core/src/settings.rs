//! An integration's rules, as the planner sees them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    #[error("unknown integration type {0:?}: expected \"bitbucket\" or \"bitbucket_server\"")]
    UnknownType(String),
    #[error("repository {0:?} must look like \"owner/repo\" (workspace/repo on Cloud, PROJECT/repo on Server)")]
    Repository(String),
}

/// Checks a `workspace/repo` (Cloud) or `PROJECT/repo` (Server) repository path.
///
/// Personal Server projects look like `~user/repo`, so `~` is allowed at the start.
pub fn validate_repository(repository: &str) -> Result<(), SettingsError> {
    let bad = || SettingsError::Repository(repository.to_owned());
    let (owner, name) = repository.split_once('/').ok_or_else(bad)?;
    let owner_body = owner.strip_prefix('~').unwrap_or(owner);
    let valid_part = |part: &str| {
        !part.is_empty()
            && part.len() <= 128
            && part != "."
            && part != ".."
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
        }
    }
}

impl Settings {
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
    fn repository_paths() {
        for ok in ["ws/repo", "PROJ/my-repo.git2", "~jdoe/repo", "a_b/c.d"] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "repo", "/repo", "ws/", "ws/a/b", "ws/..", "w s/r", "ws/r?x",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
    }
}
