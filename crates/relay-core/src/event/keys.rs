//! Which product sent an `X-Event-Key`, and what the relay does with it.

use crate::settings::IntegrationType;

/// Event keys of the deliveries the relay queues itself, whose body is a serialized
/// [`crate::Event`]: the webhook endpoint refuses every key with this prefix.
pub const INTERNAL_PREFIX: &str = "relay:";
/// The reconciler's listing ([`crate::Event::Snapshot`]).
pub const SNAPSHOT_EVENT: &str = "relay:snapshot";
/// An operator's activate or deactivate ([`crate::Event::Transition`]).
pub const TRANSITION_EVENT: &str = "relay:transition";
/// The periodic sweep of idle environments ([`crate::Event::Sweep`]).
pub const SWEEP_EVENT: &str = "relay:sweep";

/// Whether `event_key` is one of the relay's own.
pub fn is_internal(event_key: &str) -> bool {
    event_key.starts_with(INTERNAL_PREFIX)
}

impl IntegrationType {
    /// The product whose webhooks use `event_key`, or `None` for a key neither sends.
    pub fn of_event_key(event_key: &str) -> Option<IntegrationType> {
        classify(event_key).map(|(product, _)| product)
    }
}

/// What parsing does with a recognised key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Push,
    PullRequest(PrKey),
    Ping,
    /// Recognised, but nothing the planner acts on; the text is the recorded reason.
    Ignored(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrKey {
    CloudCreated,
    CloudUpdated,
    CloudFulfilled,
    CloudRejected,
    ServerOpened,
    ServerFromRefUpdated,
    ServerModified,
    ServerMerged,
    ServerDeclined,
    ServerDeleted,
    ServerReopened,
}

const COMMENT: &str = "comments do not change environments";
const REVIEW: &str = "reviews and approvals do not change environments";
const REPOSITORY: &str = "repository metadata events do not change environments";
const STATUS: &str = "commit statuses are written by the relay, not read";
const ISSUE: &str = "issues do not change environments";

/// Maps a key to its product and meaning. Families whose members vary between Bitbucket
/// versions (`pr:reviewer:needs_work` became `pr:reviewer:changes_requested`, Cloud keeps
/// adding `pullrequest:comment_*` kinds) are matched by prefix so a new member is still
/// recognised as ignorable instead of failing the delivery.
pub(crate) fn classify(key: &str) -> Option<(IntegrationType, KeyKind)> {
    use IntegrationType::{Cloud, Server};
    use KeyKind::{Ignored, PullRequest, Push};
    let exact = match key {
        "repo:push" => Some((Cloud, Push)),
        "pullrequest:created" => Some((Cloud, PullRequest(PrKey::CloudCreated))),
        "pullrequest:updated" => Some((Cloud, PullRequest(PrKey::CloudUpdated))),
        "pullrequest:fulfilled" => Some((Cloud, PullRequest(PrKey::CloudFulfilled))),
        "pullrequest:rejected" => Some((Cloud, PullRequest(PrKey::CloudRejected))),
        "pullrequest:approved" | "pullrequest:unapproved" => Some((Cloud, Ignored(REVIEW))),
        "repo:updated" | "repo:fork" | "repo:transfer" | "repo:created" | "repo:deleted"
        | "repo:imported" => Some((Cloud, Ignored(REPOSITORY))),
        "repo:refs_changed" => Some((Server, Push)),
        "pr:opened" => Some((Server, PullRequest(PrKey::ServerOpened))),
        "pr:from_ref_updated" => Some((Server, PullRequest(PrKey::ServerFromRefUpdated))),
        "pr:modified" => Some((Server, PullRequest(PrKey::ServerModified))),
        "pr:merged" => Some((Server, PullRequest(PrKey::ServerMerged))),
        "pr:declined" => Some((Server, PullRequest(PrKey::ServerDeclined))),
        "pr:deleted" => Some((Server, PullRequest(PrKey::ServerDeleted))),
        "pr:reopened" => Some((Server, PullRequest(PrKey::ServerReopened))),
        "diagnostics:ping" => Some((Server, KeyKind::Ping)),
        "repo:modified" | "repo:forked" | "repo:secret_detected" => {
            Some((Server, Ignored(REPOSITORY)))
        }
        _ => None,
    };
    exact.or_else(|| {
        let prefixes: [(&str, IntegrationType, &'static str); 9] = [
            ("pullrequest:comment_", Cloud, COMMENT),
            ("pullrequest:changes_request_", Cloud, REVIEW),
            ("repo:commit_comment_", Cloud, COMMENT),
            ("repo:commit_status_", Cloud, STATUS),
            ("issue:", Cloud, ISSUE),
            ("pr:comment:", Server, COMMENT),
            ("pr:reviewer:", Server, REVIEW),
            ("repo:comment:", Server, COMMENT),
            (
                "mirror:",
                Server,
                "mirror synchronisation does not change environments",
            ),
        ];
        prefixes.iter().find_map(|(prefix, product, reason)| {
            (key.len() > prefix.len() && key.starts_with(prefix))
                .then_some((*product, Ignored(reason)))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers() {
        for key in [
            "repo:push",
            "pullrequest:updated",
            "pullrequest:comment_created",
            "repo:fork",
        ] {
            assert_eq!(
                IntegrationType::of_event_key(key),
                Some(IntegrationType::Cloud),
                "{key}"
            );
        }
        for key in [
            "repo:refs_changed",
            "pr:opened",
            "diagnostics:ping",
            "repo:modified",
            "repo:forked",
            "repo:comment:added",
            "pr:reviewer:needs_work",
            "pr:reviewer:changes_requested",
            "mirror:repo_synchronized",
        ] {
            assert_eq!(
                IntegrationType::of_event_key(key),
                Some(IntegrationType::Server),
                "{key}"
            );
        }
        for key in [
            "",
            "push",
            "pr:",
            "pullrequest:comment_",
            "github:push",
            "REPO:PUSH",
        ] {
            assert_eq!(IntegrationType::of_event_key(key), None, "{key}");
        }
    }
}
