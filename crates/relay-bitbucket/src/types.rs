//! What the clients return and accept, the same for Cloud and Server.

use relay_core::{CommitHash, IntegrationType};
use secrecy::SecretString;

/// Events the relay registers on Bitbucket Cloud: pushes, repository changes (default branch)
/// and the pull-request lifecycle. Comments and approvals stay off.
pub const CLOUD_WEBHOOK_EVENTS: &[&str] = &[
    "repo:push",
    "repo:updated",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
];

/// Events the relay registers on Bitbucket Server: every repository and pull-request event
/// except comments and reviewer activity.
pub const SERVER_WEBHOOK_EVENTS: &[&str] = &[
    "repo:refs_changed",
    "repo:modified",
    "pr:opened",
    "pr:from_ref_updated",
    "pr:modified",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
];

pub fn webhook_events(provider: IntegrationType) -> &'static [&'static str] {
    match provider {
        IntegrationType::Cloud => CLOUD_WEBHOOK_EVENTS,
        IntegrationType::Server => SERVER_WEBHOOK_EVENTS,
    }
}

/// The repository as Bitbucket describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `workspace/repo` or `PROJECT/slug`.
    pub full_name: String,
    /// Cloud's `mainbranch`, Server's default branch; `None` for an empty repository.
    pub default_branch: Option<String>,
    /// Cloud `{uuid}`, Server numeric id as text.
    pub id: Option<String>,
}

/// A branch and its head (always a full 40-character id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub name: String,
    pub commit: CommitHash,
}

/// A webhook registered on the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Cloud `{uuid}` (with braces), Server numeric id as text.
    pub id: String,
    pub url: String,
    /// Cloud `description`, Server `name`.
    pub description: String,
    pub events: Vec<String>,
    pub active: bool,
    /// Cloud says whether a secret is set (never its value); Server says nothing (`None`).
    pub secret_set: Option<bool>,
}

impl Webhook {
    /// Events of `wanted` this webhook does not subscribe to.
    pub fn missing_events(&self, wanted: &[&str]) -> Vec<String> {
        wanted
            .iter()
            .filter(|w| !self.events.iter().any(|e| e == *w))
            .map(|w| (*w).to_owned())
            .collect()
    }

    /// Same target, ignoring a trailing slash.
    pub fn points_to(&self, url: &str) -> bool {
        self.url.trim_end_matches('/') == url.trim_end_matches('/')
    }
}

/// What to register. The secret is write-only: Bitbucket never returns it.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: String,
    pub secret: SecretString,
    pub events: Vec<String>,
    pub description: String,
    pub active: bool,
}

impl WebhookSpec {
    /// The relay's webhook: the provider's event list, active, with a recognisable name.
    pub fn relay(provider: IntegrationType, url: &str, secret: SecretString) -> Self {
        Self {
            url: url.to_owned(),
            secret,
            events: webhook_events(provider)
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            description: "Bitbucket relay".to_owned(),
            active: true,
        }
    }
}

/// Whether [`crate::BitbucketClient::upsert_webhook`] created or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookChange {
    Created(Webhook),
    Updated(Webhook),
}

impl WebhookChange {
    pub fn webhook(&self) -> &Webhook {
        match self {
            Self::Created(w) | Self::Updated(w) => w,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildState {
    InProgress,
    Successful,
    Failed,
    /// Cloud `STOPPED`, Server `CANCELLED`.
    Stopped,
}

impl BuildState {
    pub fn cloud_str(self) -> &'static str {
        match self {
            Self::InProgress => "INPROGRESS",
            Self::Successful => "SUCCESSFUL",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
        }
    }

    pub fn server_str(self) -> &'static str {
        match self {
            Self::Stopped => "CANCELLED",
            other => other.cloud_str(),
        }
    }
}

/// A commit build status. The same `key` on the same commit overwrites the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStatus {
    pub key: String,
    pub state: BuildState,
    /// Required by both products: the environment's URL, or a page about it.
    pub url: String,
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Bitbucket rejects over-long free text; cut at a character boundary instead.
pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_helpers() {
        let hook = Webhook {
            id: "1".into(),
            url: "https://relay.example.com/webhooks/bitbucket/7/".into(),
            description: String::new(),
            events: vec!["repo:push".into()],
            active: true,
            secret_set: None,
        };
        assert!(hook.points_to("https://relay.example.com/webhooks/bitbucket/7"));
        assert_eq!(
            hook.missing_events(&["repo:push", "repo:updated"]),
            vec!["repo:updated"]
        );
        assert_eq!(BuildState::Stopped.server_str(), "CANCELLED");
        assert_eq!(BuildState::Stopped.cloud_str(), "STOPPED");
        assert_eq!(clip("ééé", 2), "éé");
    }
}
