//! Bitbucket webhook bodies → one normalized [`Event`].
//!
//! Each product's JSON is read into small private structs that name only the fields the
//! relay needs (unknown fields are ignored, optional ones may be absent or `null`), then
//! converted into the public types here, so nothing downstream knows which product spoke.
//! Every failure is a typed [`ParseError`]; no input panics.

mod cloud;
mod commit;
mod error;
mod keys;
pub use keys::{is_internal, INTERNAL_PREFIX, SNAPSHOT_EVENT, SWEEP_EVENT, TRANSITION_EVENT};
mod server;
mod storable;
mod time;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use commit::{CommitHash, CommitHashError};
pub use error::ParseError;
pub use storable::{check_pull_request, check_storable};

pub(crate) use commit::same_opt;
pub(crate) use error::{commit_field, json_error, text_field, timestamp_field, truncate_for_error};
use keys::KeyKind;

use crate::settings::IntegrationType;

/// A webhook (or a reconciler listing) in the relay's own terms.
#[expect(
    clippy::large_enum_variant,
    reason = "one event exists per delivery being planned; boxing would only make matching clumsier"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Refs moved: Cloud `repo:push`, Server `repo:refs_changed`.
    Push {
        /// Every ref the push touched, in payload order. May be empty (Server).
        changes: Vec<RefChange>,
        /// Cloud lists at most 5 commits per change; true when any list was cut. Refs are
        /// never cut, so the planner needs nothing from the commit lists.
        truncated: bool,
    },
    PullRequest {
        action: PrAction,
        pr: PullRequest,
    },
    /// Server's "Test connection" (`diagnostics:ping`).
    Ping,
    /// A recognised event the relay stores but does not act on.
    Ignored {
        event_key: String,
        reason: String,
    },
    /// The whole truth of the remote at one moment, listed through the REST API by the
    /// reconciler: every branch with its head, and every open pull request.
    Snapshot {
        branches: Vec<(String, CommitHash)>,
        pull_requests: Vec<PullRequest>,
    },
    /// An operator's decision about one environment (`environment:activate`,
    /// `environment:deactivate`), queued like the snapshot so it is planned in the
    /// integration's delivery order.
    Transition {
        environment: String,
        transition: Transition,
    },
    /// The periodic look at idle environments (`environment_idle_ttl`), queued by the relay
    /// with the time it was queued at (epoch ms), which is the "now" it is planned against.
    Sweep {
        now_ms: i64,
    },
}

/// What an operator asked of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Transition {
    /// Deploy an inactive environment at its current head; with `sync_data` the deploy side
    /// also copies the parent's data first.
    Activate { sync_data: bool },
    /// Stop deploying: the deploy side tears the environment down, the row and mirror stay.
    Deactivate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefKind {
    Branch,
    Tag,
}

/// One ref's move. `old` is `None` when the ref was created, `new` when it was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefChange {
    pub kind: RefKind,
    /// Short name (`feature/x`), never `refs/heads/feature/x`.
    pub name: String,
    pub old: Option<CommitHash>,
    pub new: Option<CommitHash>,
    /// Cloud says when history was rewritten; Server does not, so it is false there.
    pub forced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrAction {
    /// Cloud `pullrequest:created`, Server `pr:opened`.
    Opened,
    /// Cloud `pullrequest:updated`: new source commits, a new destination or only metadata;
    /// the planner tells which by comparing with what it stored.
    Updated,
    /// Server `pr:from_ref_updated`: new source commits.
    SourceUpdated,
    /// Server `pr:modified`: title, description or target changed.
    Modified { previous_target: Option<String> },
    /// Cloud `pullrequest:fulfilled`, Server `pr:merged`.
    Merged,
    /// Cloud `pullrequest:rejected`, Server `pr:declined`.
    Declined,
    /// Server `pr:deleted`.
    Deleted,
    /// Server `pr:reopened`.
    Reopened,
}

impl PrAction {
    /// Merged, declined and deleted end a pull request's life.
    pub fn is_closing(&self) -> bool {
        matches!(self, Self::Merged | Self::Declined | Self::Deleted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    Open,
    Merged,
    Declined,
    /// Cloud's legacy state for a PR replaced by another; closed like declined.
    Superseded,
}

impl PrState {
    /// Text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Merged => "merged",
            Self::Declined => "declined",
            Self::Superseded => "superseded",
        }
    }

    pub fn is_open(self) -> bool {
        self == Self::Open
    }
}

impl fmt::Display for PrState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts the stored lowercase text and Bitbucket's upper-case spelling.
impl FromStr for PrState {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "merged" => Ok(Self::Merged),
            "declined" => Ok(Self::Declined),
            "superseded" => Ok(Self::Superseded),
            _ => Err(UnknownValue {
                what: "pull request state",
                value: s.to_owned(),
            }),
        }
    }
}

/// A text value that does not name any variant of a stored enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// The repository one side of a pull request lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    /// `workspace/repo` on Cloud, `PROJECT/slug` on Server (`~user/slug` for personal
    /// projects). What git needs to fetch a fork's source.
    pub full_name: String,
    /// Stable identity: Cloud's `{uuid}`, Server's numeric id as text. Survives renames, so
    /// fork detection prefers it over the name.
    pub id: Option<String>,
}

impl RepoRef {
    /// Whether both refer to the same repository: by id when both have one, else by name
    /// (case-insensitively: Server project keys and Cloud slugs are case-insensitive).
    pub fn same_repository(&self, other: &RepoRef) -> bool {
        match (&self.id, &other.id) {
            (Some(a), Some(b)) => a == b,
            _ => {
                !self.full_name.is_empty() && self.full_name.eq_ignore_ascii_case(&other.full_name)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrEndpoint {
    pub branch: String,
    /// Abbreviated (12 characters) on Cloud; check [`CommitHash::is_full`].
    pub commit: CommitHash,
    pub repository: RepoRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub id: u64,
    pub title: String,
    pub state: PrState,
    pub source: PrEndpoint,
    pub target: PrEndpoint,
    /// `draft` (Cloud; Server 8.18+, in `pr:modified` too), false when absent. Drafts are
    /// built unless `build_draft_pull_requests` is off.
    pub draft: bool,
    /// Last update, epoch milliseconds; orders events about the same pull request.
    pub updated_at_ms: Option<i64>,
}

impl PullRequest {
    /// Source in another repository than the target: untrusted code from a fork.
    pub fn is_fork(&self) -> bool {
        !self
            .source
            .repository
            .same_repository(&self.target.repository)
    }
}

/// Parses a webhook body. `event_key` is the `X-Event-Key` header (on Server it equals the
/// body's `eventKey`, and a body that disagrees is rejected). A value the relay could not
/// store (see [`check_storable`]) is a parse error too.
pub fn parse(event_key: &str, body: &[u8]) -> Result<Event, ParseError> {
    let event = parse_unchecked(event_key, body)?;
    check_storable(&event)?;
    Ok(event)
}

fn parse_unchecked(event_key: &str, body: &[u8]) -> Result<Event, ParseError> {
    let (product, kind) = keys::classify(event_key)
        .ok_or_else(|| ParseError::UnknownEventKey(truncate_for_error(event_key)))?;
    match kind {
        // The ping body is `{"test": true}` but nothing depends on it, so it is not read.
        KeyKind::Ping => Ok(Event::Ping),
        KeyKind::Ignored(reason) => {
            // Stored anyway, so it must at least be JSON.
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(json_error)?;
            Ok(Event::Ignored {
                event_key: event_key.to_owned(),
                reason: reason.to_owned(),
            })
        }
        KeyKind::Push => match product {
            IntegrationType::Cloud => cloud::parse_push(body),
            IntegrationType::Server => server::parse_push(event_key, body),
        },
        KeyKind::PullRequest(pr_key) => match product {
            IntegrationType::Cloud => cloud::parse_pull_request(pr_key, body),
            IntegrationType::Server => server::parse_pull_request(event_key, pr_key, body),
        },
    }
}

/// Parses one pull-request object as the REST API lists it (Cloud
/// `GET /2.0/repositories/{w}/{r}/pullrequests` values, Server
/// `GET /rest/api/latest/projects/{p}/repos/{r}/pull-requests` values): the same shape as
/// the webhook's `pullrequest` / `pullRequest`, so the reconciler builds its
/// [`Event::Snapshot`] with the same conversion as the webhooks.
pub fn parse_pull_request_object(
    product: IntegrationType,
    json: &[u8],
) -> Result<PullRequest, ParseError> {
    let pr = match product {
        IntegrationType::Cloud => {
            cloud::convert_pull_request(serde_json::from_slice(json).map_err(json_error)?)
        }
        IntegrationType::Server => {
            server::convert_pull_request(serde_json::from_slice(json).map_err(json_error)?)
        }
    }?;
    check_pull_request(&pr)?;
    Ok(pr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_typed_errors() {
        assert_eq!(
            parse("repo:exploded", b"{}"),
            Err(ParseError::UnknownEventKey("repo:exploded".into()))
        );
    }

    #[test]
    fn ignored_events_need_json() {
        let ev = parse("pullrequest:approved", b"{\"x\":1}").unwrap();
        assert!(matches!(ev, Event::Ignored { .. }));
        assert!(matches!(
            parse("pr:comment:added", b"{nope"),
            Err(ParseError::InvalidJson(_))
        ));
    }

    #[test]
    fn ping_ignores_its_body() {
        assert_eq!(
            parse("diagnostics:ping", b"{\"test\": true}"),
            Ok(Event::Ping)
        );
        assert_eq!(parse("diagnostics:ping", b""), Ok(Event::Ping));
    }

    #[test]
    fn state_text_round_trips() {
        for s in [
            PrState::Open,
            PrState::Merged,
            PrState::Declined,
            PrState::Superseded,
        ] {
            assert_eq!(s.as_str().parse::<PrState>(), Ok(s));
        }
        assert_eq!("MERGED".parse::<PrState>(), Ok(PrState::Merged));
        assert!("closed".parse::<PrState>().is_err());
    }

    #[test]
    fn forks_by_id_then_name() {
        let a = RepoRef {
            full_name: "ws/foo".into(),
            id: Some("{1}".into()),
        };
        let renamed = RepoRef {
            full_name: "ws/bar".into(),
            id: Some("{1}".into()),
        };
        let other = RepoRef {
            full_name: "ws/foo".into(),
            id: Some("{2}".into()),
        };
        let by_name = RepoRef {
            full_name: "WS/Foo".into(),
            id: None,
        };
        let unknown = RepoRef {
            full_name: String::new(),
            id: None,
        };
        assert!(a.same_repository(&renamed));
        assert!(!a.same_repository(&other));
        assert!(a.same_repository(&by_name));
        assert!(!unknown.same_repository(&unknown));
    }
}
