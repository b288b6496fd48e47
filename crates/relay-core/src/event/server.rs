//! Bitbucket Server / Data Center bodies (`repo:refs_changed`, `pr:*`).

use serde::Deserialize;
use serde_json::Value;

use super::keys::PrKey;
use super::{
    commit_field, json_error, text_field, timestamp_field, CommitHash, Event, ParseError, PrAction,
    PrEndpoint, PrState, PullRequest, RefChange, RefKind, RepoRef,
};

const HEADS: &str = "refs/heads/";
const TAGS: &str = "refs/tags/";

#[derive(Deserialize)]
struct PushBody {
    #[serde(rename = "eventKey")]
    event_key: Option<String>,
    changes: Option<Vec<Change>>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(rename = "ref")]
    reference: Option<ServerRef>,
    #[serde(rename = "refId")]
    ref_id: Option<String>,
    #[serde(rename = "fromHash")]
    from_hash: Option<String>,
    #[serde(rename = "toHash")]
    to_hash: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct ServerRef {
    id: Option<String>,
    #[serde(rename = "displayId")]
    display_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn check_key(header: &str, body: Option<String>) -> Result<(), ParseError> {
    match body {
        Some(body) if body != header => Err(ParseError::EventKeyMismatch {
            header: header.to_owned(),
            body: body.chars().take(100).collect(),
        }),
        _ => Ok(()),
    }
}

pub(super) fn parse_push(event_key: &str, body: &[u8]) -> Result<Event, ParseError> {
    let body: PushBody = serde_json::from_slice(body).map_err(json_error)?;
    check_key(event_key, body.event_key)?;
    let changes = body
        .changes
        .ok_or_else(|| ParseError::missing("changes"))?
        .into_iter()
        .map(convert_change)
        .collect::<Result<Vec<_>, _>>()?;
    // Server never truncates: it sends no commit list at all, or (newer versions) all of it.
    Ok(Event::Push {
        changes,
        truncated: false,
    })
}

fn convert_change(change: Change) -> Result<RefChange, ParseError> {
    let reference = change.reference.as_ref();
    let full_id = reference
        .and_then(|r| r.id.clone())
        .or(change.ref_id.clone())
        .filter(|s| !s.is_empty());
    let kind = match reference.and_then(|r| r.kind.as_deref()) {
        Some("BRANCH") => RefKind::Branch,
        Some("TAG") => RefKind::Tag,
        Some(other) => return Err(ParseError::invalid("changes[].ref.type", other)),
        None => match full_id.as_deref() {
            Some(id) if id.starts_with(HEADS) => RefKind::Branch,
            Some(id) if id.starts_with(TAGS) => RefKind::Tag,
            _ => return Err(ParseError::missing("changes[].ref.type")),
        },
    };
    // `displayId` is the short name on every version seen, but the full id is authoritative:
    // strip the namespace from it when it has one.
    let prefix = match kind {
        RefKind::Branch => HEADS,
        RefKind::Tag => TAGS,
    };
    let name = full_id
        .as_deref()
        .and_then(|id| id.strip_prefix(prefix))
        .map(str::to_owned)
        .or_else(|| reference.and_then(|r| r.display_id.clone()))
        .or(full_id);
    let name = text_field("changes[].ref.id", name)?;
    let hash = |field: &str, raw: Option<&str>| -> Result<Option<CommitHash>, ParseError> {
        let raw = raw.unwrap_or_default();
        CommitHash::parse_nullable(raw).map_err(|_| ParseError::invalid(field, raw))
    };
    let from = hash("changes[].fromHash", change.from_hash.as_deref())?;
    let to = hash("changes[].toHash", change.to_hash.as_deref())?;
    let (old, new) = match change.kind.as_deref() {
        Some("ADD") => (None, to),
        Some("DELETE") => (from, None),
        Some("UPDATE") | None => (from, to),
        Some(other) => return Err(ParseError::invalid("changes[].type", other)),
    };
    if old.is_none() && new.is_none() {
        return Err(ParseError::missing("changes[].toHash"));
    }
    Ok(RefChange {
        kind,
        name,
        old,
        new,
        forced: false,
    })
}

#[derive(Deserialize)]
struct PrBody {
    #[serde(rename = "eventKey")]
    event_key: Option<String>,
    #[serde(rename = "pullRequest")]
    pull_request: Option<Pr>,
    #[serde(rename = "previousTarget")]
    previous_target: Option<ServerRef>,
}

#[derive(Deserialize)]
pub(super) struct Pr {
    id: Option<u64>,
    title: Option<String>,
    state: Option<String>,
    #[serde(rename = "fromRef")]
    from_ref: Option<PrRef>,
    #[serde(rename = "toRef")]
    to_ref: Option<PrRef>,
    #[serde(rename = "updatedDate")]
    updated_date: Option<Value>,
    draft: Option<bool>,
}

#[derive(Deserialize)]
struct PrRef {
    id: Option<String>,
    #[serde(rename = "displayId")]
    display_id: Option<String>,
    #[serde(rename = "latestCommit")]
    latest_commit: Option<String>,
    repository: Option<Repo>,
}

#[derive(Deserialize)]
struct Repo {
    id: Option<Value>,
    slug: Option<String>,
    project: Option<Project>,
}

#[derive(Deserialize)]
struct Project {
    key: Option<String>,
}

pub(super) fn parse_pull_request(
    event_key: &str,
    key: PrKey,
    body: &[u8],
) -> Result<Event, ParseError> {
    let body: PrBody = serde_json::from_slice(body).map_err(json_error)?;
    check_key(event_key, body.event_key)?;
    let action = match key {
        PrKey::ServerOpened => PrAction::Opened,
        PrKey::ServerFromRefUpdated => PrAction::SourceUpdated,
        PrKey::ServerModified => PrAction::Modified {
            previous_target: body.previous_target.map(branch_name).transpose()?,
        },
        PrKey::ServerMerged => PrAction::Merged,
        PrKey::ServerDeclined => PrAction::Declined,
        PrKey::ServerDeleted => PrAction::Deleted,
        PrKey::ServerReopened => PrAction::Reopened,
        _ => {
            return Err(ParseError::invalid(
                "eventKey",
                "not a Server pull request key",
            ))
        }
    };
    let pr = body
        .pull_request
        .ok_or_else(|| ParseError::missing("pullRequest"))?;
    Ok(Event::PullRequest {
        action,
        pr: convert_pull_request(pr)?,
    })
}

fn branch_name(r: ServerRef) -> Result<String, ParseError> {
    let name =
        r.id.as_deref()
            .and_then(|id| id.strip_prefix(HEADS))
            .map(str::to_owned)
            .or(r.display_id)
            .or(r.id);
    text_field("previousTarget.id", name)
}

/// Converts one pull-request object; the REST API's listing uses the same shape.
pub(super) fn convert_pull_request(pr: Pr) -> Result<PullRequest, ParseError> {
    let state = match pr.state.as_deref() {
        Some("OPEN") => PrState::Open,
        Some("MERGED") => PrState::Merged,
        Some("DECLINED") => PrState::Declined,
        Some(other) => return Err(ParseError::invalid("pullRequest.state", other)),
        None => return Err(ParseError::missing("pullRequest.state")),
    };
    Ok(PullRequest {
        id: pr.id.ok_or_else(|| ParseError::missing("pullRequest.id"))?,
        title: pr.title.unwrap_or_default(),
        state,
        source: endpoint("pullRequest.fromRef", pr.from_ref)?,
        target: endpoint("pullRequest.toRef", pr.to_ref)?,
        draft: pr.draft.unwrap_or(false),
        updated_at_ms: timestamp_field("pullRequest.updatedDate", pr.updated_date.as_ref())?,
    })
}

fn endpoint(path: &'static str, raw: Option<PrRef>) -> Result<PrEndpoint, ParseError> {
    let raw = raw.ok_or_else(|| ParseError::missing(path))?;
    let branch = raw
        .id
        .as_deref()
        .and_then(|id| id.strip_prefix(HEADS))
        .map(str::to_owned)
        .or(raw.display_id);
    let repository = match raw.repository {
        Some(repo) => RepoRef {
            full_name: match (repo.project.and_then(|p| p.key), repo.slug) {
                (Some(project), Some(slug)) => format!("{project}/{slug}"),
                _ => String::new(),
            },
            id: match repo.id {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                _ => None,
            },
        },
        None => RepoRef {
            full_name: String::new(),
            id: None,
        },
    };
    Ok(PrEndpoint {
        branch: text_field(&format!("{path}.id"), branch)?,
        commit: commit_field(
            &format!("{path}.latestCommit"),
            raw.latest_commit.as_deref(),
        )?,
        repository,
    })
}
