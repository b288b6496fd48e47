//! Pull-request comments. Cloud: `POST .../pullrequests/{id}/comments` with
//! `{"content": {"raw"}}` (201), `PUT .../comments/{comment_id}` (200), both refused with 403
//! unless the OAuth scopes include `pullrequest:write`. Server: `POST
//! .../pull-requests/{id}/comments` with `{"text"}` (201, version 0), `GET` and `PUT
//! .../comments/{comment_id}`; a `PUT` naming another version than the comment's answers 409.
//! A comment deleted through the controls answers 404.

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use crate::app::{error_response, json, Shared};
use crate::page::{cloud_page, query_pairs, server_page};
use crate::rest::{self, p, Params};
use crate::state::{Flavor, RecordedComment};

/// `(owner, repo)` of the request, whichever flavour's parameter names it uses.
fn repo_of(shared: &Shared, params: &Params) -> (String, String) {
    let owner = match shared.flavor() {
        Flavor::Cloud => p(params, "w"),
        Flavor::Server => p(params, "p"),
    };
    (owner.to_owned(), p(params, "r").to_owned())
}

fn not_found(shared: &Shared, what: &str) -> Response {
    shared.error(StatusCode::NOT_FOUND, &format!("{what} does not exist"))
}

/// Checks the repository, the pull request and, for a write on Cloud, the token's scopes.
fn check(shared: &Shared, params: &Params, write: bool) -> Result<(String, String, u64), Response> {
    let (owner, repo) = repo_of(shared, params);
    rest::repo_dir(shared, &owner, &repo)?;
    let pr: u64 = p(params, "id")
        .parse()
        .map_err(|_| not_found(shared, "Pull request"))?;
    let st = shared.lock();
    if !st
        .pulls
        .iter()
        .any(|r| r.id == pr && r.spec.owner == owner && r.spec.repo == repo)
    {
        drop(st);
        return Err(not_found(shared, "Pull request"));
    }
    if write
        && st.flavor == Flavor::Cloud
        && !st
            .scopes
            .split_whitespace()
            .any(|s| s == "pullrequest:write")
    {
        drop(st);
        return Err(shared.error(
            StatusCode::FORBIDDEN,
            "Your credentials lack one or more required privilege scopes.",
        ));
    }
    Ok((owner, repo, pr))
}

/// The comment's text from the flavour's body shape.
fn text_of(shared: &Shared, body: &Value) -> Result<String, Response> {
    let text = match shared.flavor() {
        Flavor::Cloud => body.pointer("/content/raw"),
        Flavor::Server => body.get("text"),
    };
    text.and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| shared.error(StatusCode::BAD_REQUEST, "comment text is required"))
}

fn shape(shared: &Shared, c: &RecordedComment) -> Value {
    match shared.flavor() {
        Flavor::Cloud => json!({
            "type": "pullrequest_comment",
            "id": c.id,
            "content": {"raw": c.text, "markup": "markdown", "html": c.text},
            "deleted": false,
            "pending": false,
            "pullrequest": {"type": "pullrequest", "id": c.pr_id},
            "user": {"type": "user", "display_name": "Relay", "uuid": "{relay}"},
            "links": {"self": {"href": format!(
                "{}2.0/repositories/{}/{}/pullrequests/{}/comments/{}",
                shared.api_url, c.owner, c.repo, c.pr_id, c.id
            )}},
        }),
        Flavor::Server => json!({
            "id": c.id,
            "version": c.version,
            "text": c.text,
            "author": {"name": "relay", "displayName": "Relay", "slug": "relay", "type": "NORMAL"},
            "createdDate": rest::now_ms(),
            "updatedDate": rest::now_ms(),
            "comments": [],
            "tasks": [],
            "severity": "NORMAL",
            "state": "OPEN",
        }),
    }
}

pub(crate) async fn create(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (owner, repo, pr_id) = match check(&shared, &params, true) {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let text = match rest::body_json(&shared, uri.path(), &body).and_then(|b| text_of(&shared, &b))
    {
        Ok(text) => text,
        Err(resp) => return resp,
    };
    let comment = {
        let mut st = shared.lock();
        let id = st.next_id();
        let comment = RecordedComment {
            owner,
            repo,
            pr_id,
            id,
            text,
            version: 0,
            edits: 0,
            deleted: false,
        };
        st.comments.push(comment.clone());
        if std::mem::take(&mut st.lose_next_comment_answer) {
            drop(st);
            // Stored, but the client never hears so (a timeout, a dropped connection).
            return shared.error(StatusCode::BAD_GATEWAY, "Injected failure after the write");
        }
        comment
    };
    json(StatusCode::CREATED, shape(&shared, &comment))
}

/// Comments of the request's pull request, oldest first, deleted ones left out.
fn of_pull_request(shared: &Shared, params: &Params) -> Result<Vec<RecordedComment>, Response> {
    let (owner, repo, pr) = check(shared, params, false)?;
    let comments = shared
        .lock()
        .comments
        .iter()
        .filter(|c| c.owner == owner && c.repo == repo && c.pr_id == pr && !c.deleted)
        .cloned()
        .collect();
    Ok(comments)
}

/// Cloud `GET .../pullrequests/{id}/comments`, paged.
pub(crate) async fn list(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let comments = match of_pull_request(&shared, &params) {
        Ok(comments) => comments,
        Err(resp) => return resp,
    };
    let values = comments.iter().map(|c| shape(&shared, c)).collect();
    let mut url = shared.api_url.clone();
    url.set_path(uri.path());
    let page_size = shared.lock().page_size;
    let pairs = query_pairs(uri.query());
    json(StatusCode::OK, cloud_page(values, &pairs, &url, page_size))
}

/// Server `GET .../pull-requests/{id}/activities`: each comment as a `COMMENTED` activity,
/// newest first as Server lists them.
pub(crate) async fn activities(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let comments = match of_pull_request(&shared, &params) {
        Ok(comments) => comments,
        Err(resp) => return resp,
    };
    let values = comments
        .iter()
        .rev()
        .map(|c| {
            json!({
                "id": 1_000_000 + c.id,
                "action": "COMMENTED",
                "commentAction": "ADDED",
                "comment": shape(&shared, c),
            })
        })
        .collect();
    let page_size = shared.lock().page_size;
    let pairs = query_pairs(uri.query());
    json(StatusCode::OK, server_page(values, &pairs, page_size))
}

/// The comment `cid` of the request's pull request, unless deleted.
fn find(shared: &Shared, params: &Params, pr_id: u64) -> Result<RecordedComment, Response> {
    let cid: u64 = p(params, "cid")
        .parse()
        .map_err(|_| not_found(shared, "Comment"))?;
    // The lock is released before answering: an error response locks the state again.
    let found = shared
        .lock()
        .comments
        .iter()
        .find(|c| c.id == cid && c.pr_id == pr_id && !c.deleted)
        .cloned();
    found.ok_or_else(|| not_found(shared, "Comment"))
}

pub(crate) async fn get_one(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
) -> Response {
    let found = check(&shared, &params, false).and_then(|(_, _, pr)| find(&shared, &params, pr));
    match found {
        Ok(comment) => json(StatusCode::OK, shape(&shared, &comment)),
        Err(resp) => resp,
    }
}

pub(crate) async fn update(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let comment =
        match check(&shared, &params, true).and_then(|(_, _, pr)| find(&shared, &params, pr)) {
            Ok(comment) => comment,
            Err(resp) => return resp,
        };
    let body = match rest::body_json(&shared, uri.path(), &body) {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let text = match text_of(&shared, &body) {
        Ok(text) => text,
        Err(resp) => return resp,
    };
    let flavor = shared.flavor();
    if flavor == Flavor::Server {
        let given = body.get("version").and_then(Value::as_u64);
        if given != Some(comment.version) {
            return error_response(
                flavor,
                StatusCode::CONFLICT,
                "You are attempting to modify a comment based on out-of-date information.",
            );
        }
    }
    let updated = {
        let mut st = shared.lock();
        let Some(stored) = st.comments.iter_mut().find(|c| c.id == comment.id) else {
            drop(st);
            return not_found(&shared, "Comment");
        };
        stored.text = text;
        stored.version += 1;
        stored.edits += 1;
        stored.clone()
    };
    json(StatusCode::OK, shape(&shared, &updated))
}
