//! Bitbucket Cloud bodies (`repo:push`, `pullrequest:*`).

use serde::Deserialize;
use serde_json::Value;

use super::keys::PrKey;
use super::{
    commit_field, json_error, text_field, timestamp_field, Event, ParseError, PrAction, PrEndpoint,
    PrState, PullRequest, RefChange, RefKind, RepoRef,
};

#[derive(Deserialize)]
struct PushBody {
    push: Option<Push>,
}

#[derive(Deserialize)]
struct Push {
    changes: Option<Vec<Change>>,
}

#[derive(Deserialize)]
struct Change {
    old: Option<Ref>,
    new: Option<Ref>,
    forced: Option<bool>,
    truncated: Option<bool>,
}

#[derive(Deserialize)]
struct Ref {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    hash: Option<String>,
}

pub(super) fn parse_push(body: &[u8]) -> Result<Event, ParseError> {
    let body: PushBody = serde_json::from_slice(body).map_err(json_error)?;
    let changes = body
        .push
        .ok_or_else(|| ParseError::missing("push"))?
        .changes
        .ok_or_else(|| ParseError::missing("push.changes"))?;
    let truncated = changes.iter().any(|c| c.truncated.unwrap_or(false));
    let changes = changes
        .into_iter()
        .map(convert_change)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Event::Push { changes, truncated })
}

fn convert_change(change: Change) -> Result<RefChange, ParseError> {
    // `new` is null on delete and `old` on create; the name and kind are on whichever exists.
    let named = change
        .new
        .as_ref()
        .or(change.old.as_ref())
        .ok_or_else(|| ParseError::missing("push.changes[].new"))?;
    let kind = match named.kind.as_deref() {
        Some("branch" | "named_branch") => RefKind::Branch,
        Some("tag" | "annotated_tag") => RefKind::Tag,
        Some(other) => return Err(ParseError::invalid("push.changes[].new.type", other)),
        None => return Err(ParseError::missing("push.changes[].new.type")),
    };
    let name = text_field("push.changes[].new.name", named.name.clone())?;
    let hash = |side: &Option<Ref>, field: &str| -> Result<_, ParseError> {
        side.as_ref()
            .map(|r| commit_field(field, r.target.as_ref().and_then(|t| t.hash.as_deref())))
            .transpose()
    };
    Ok(RefChange {
        kind,
        name,
        old: hash(&change.old, "push.changes[].old.target.hash")?,
        new: hash(&change.new, "push.changes[].new.target.hash")?,
        forced: change.forced.unwrap_or(false),
    })
}

#[derive(Deserialize)]
struct PrBody {
    pullrequest: Option<Pr>,
}

#[derive(Deserialize)]
pub(super) struct Pr {
    id: Option<u64>,
    title: Option<String>,
    state: Option<String>,
    source: Option<Endpoint>,
    destination: Option<Endpoint>,
    draft: Option<bool>,
    updated_on: Option<Value>,
}

#[derive(Deserialize)]
struct Endpoint {
    branch: Option<Branch>,
    commit: Option<Target>,
    repository: Option<Repo>,
}

#[derive(Deserialize)]
struct Branch {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Repo {
    full_name: Option<String>,
    uuid: Option<String>,
}

pub(super) fn parse_pull_request(key: PrKey, body: &[u8]) -> Result<Event, ParseError> {
    let action = match key {
        PrKey::CloudCreated => PrAction::Opened,
        PrKey::CloudUpdated => PrAction::Updated,
        PrKey::CloudFulfilled => PrAction::Merged,
        PrKey::CloudRejected => PrAction::Declined,
        _ => {
            return Err(ParseError::invalid(
                "event key",
                "not a Cloud pull request key",
            ))
        }
    };
    let body: PrBody = serde_json::from_slice(body).map_err(json_error)?;
    let pr = body
        .pullrequest
        .ok_or_else(|| ParseError::missing("pullrequest"))?;
    Ok(Event::PullRequest {
        action,
        pr: convert_pull_request(pr)?,
    })
}

/// Converts one pull-request object; the REST API's listing uses the same shape.
pub(super) fn convert_pull_request(pr: Pr) -> Result<PullRequest, ParseError> {
    let state = match pr.state.as_deref() {
        Some("OPEN") => PrState::Open,
        Some("MERGED") => PrState::Merged,
        Some("DECLINED") => PrState::Declined,
        Some("SUPERSEDED") => PrState::Superseded,
        Some(other) => return Err(ParseError::invalid("pullrequest.state", other)),
        None => return Err(ParseError::missing("pullrequest.state")),
    };
    Ok(PullRequest {
        id: pr.id.ok_or_else(|| ParseError::missing("pullrequest.id"))?,
        title: pr.title.unwrap_or_default(),
        state,
        source: endpoint("pullrequest.source", pr.source)?,
        target: endpoint("pullrequest.destination", pr.destination)?,
        draft: pr.draft.unwrap_or(false),
        updated_at_ms: timestamp_field("pullrequest.updated_on", pr.updated_on.as_ref())?,
    })
}

fn endpoint(path: &'static str, raw: Option<Endpoint>) -> Result<PrEndpoint, ParseError> {
    let raw = raw.ok_or_else(|| ParseError::missing(path))?;
    let branch = raw.branch.and_then(|b| b.name);
    // A deleted fork leaves `repository` null: the empty name never equals another
    // repository, so such a pull request counts as a fork.
    let repository = raw.repository.map_or(
        RepoRef {
            full_name: String::new(),
            id: None,
        },
        |r| RepoRef {
            full_name: r.full_name.unwrap_or_default(),
            id: r.uuid,
        },
    );
    Ok(PrEndpoint {
        branch: text_field(&format!("{path}.branch.name"), branch)?,
        commit: commit_field(
            &format!("{path}.commit.hash"),
            raw.commit.as_ref().and_then(|c| c.hash.as_deref()),
        )?,
        repository,
    })
}
