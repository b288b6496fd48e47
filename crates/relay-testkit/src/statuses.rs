//! Commit build statuses: Cloud `POST .../commit/{sha}/statuses/build` (201/200 with the
//! status) and Server `POST .../commits/{sha}/builds` (204). The same key overwrites.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use crate::app::{empty, json, Shared};
use crate::cloud_json;
use crate::repos;
use crate::rest::{self, p, str_field, Params};
use crate::state::{Flavor, RecordedStatus};

const CLOUD_STATES: &[&str] = &["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"];
const SERVER_STATES: &[&str] = &["INPROGRESS", "SUCCESSFUL", "FAILED", "CANCELLED", "UNKNOWN"];

/// Validates and stores one status; `Ok(true)` when it replaced an earlier one.
fn record(
    shared: &Shared,
    params: &Params,
    uri: &Uri,
    body: &Bytes,
) -> Result<(RecordedStatus, bool), Response> {
    let flavor = shared.flavor();
    let (owner, repo) = match flavor {
        Flavor::Cloud => (p(params, "w"), p(params, "r")),
        Flavor::Server => (p(params, "p"), p(params, "r")),
    };
    let dir = rest::repo_dir(shared, owner, repo)?;
    if !shared.lock().status_write {
        return Err(shared.error(
            StatusCode::FORBIDDEN,
            "You are not permitted to access this resource",
        ));
    }
    let rev = p(params, "rev");
    let commit = repos::resolve(&dir, rev).ok_or_else(|| {
        shared.error(
            StatusCode::NOT_FOUND,
            &format!("Commit {rev} does not exist"),
        )
    })?;
    let body = rest::body_json(shared, uri.path(), body)?;
    let allowed = match flavor {
        Flavor::Cloud => CLOUD_STATES,
        Flavor::Server => SERVER_STATES,
    };
    let (Some(key), Some(state)) = (str_field(&body, "key"), str_field(&body, "state")) else {
        return Err(shared.error(StatusCode::BAD_REQUEST, "key and state are required"));
    };
    if !allowed.contains(&state.as_str()) {
        return Err(shared.error(
            StatusCode::BAD_REQUEST,
            &format!("state: {state} is not one of {allowed:?}"),
        ));
    }
    let url = str_field(&body, "url");
    if url.as_deref().unwrap_or_default().is_empty() {
        return Err(shared.error(StatusCode::BAD_REQUEST, "url: This field is required."));
    }
    let mut status = RecordedStatus {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        commit,
        key,
        state,
        url,
        name: str_field(&body, "name"),
        description: str_field(&body, "description"),
        writes: 1,
    };
    let mut st = shared.lock();
    let existing = st.statuses.iter_mut().find(|s| {
        s.owner == status.owner
            && s.repo == status.repo
            && s.commit == status.commit
            && s.key == status.key
    });
    Ok(match existing {
        Some(old) => {
            status.writes = old.writes + 1;
            *old = status.clone();
            (status, true)
        }
        None => {
            st.statuses.push(status.clone());
            (status, false)
        }
    })
}

pub(crate) async fn cloud_post(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
    body: Bytes,
) -> Response {
    match record(&shared, &params, &uri, &body) {
        Ok((status, replaced)) => json(
            if replaced {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            cloud_json::status(&shared.api_url, &status),
        ),
        Err(resp) => resp,
    }
}

pub(crate) async fn server_post(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
    body: Bytes,
) -> Response {
    match record(&shared, &params, &uri, &body) {
        Ok(_) => empty(StatusCode::NO_CONTENT),
        Err(resp) => resp,
    }
}
