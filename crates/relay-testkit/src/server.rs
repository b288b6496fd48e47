//! Bitbucket Server / Data Center: REST under `/rest/api/{latest|1.0}/...`, git under `/scm/`.

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::app::{self, empty, json, Shared};
use crate::page::{query_pairs, server_page};
use crate::repos;
use crate::rest::{self, p, Params};
use crate::state::PullRecord;
use crate::{comments, git_http, hooks, statuses};

const REPO: &str = "/rest/api/{ver}/projects/{p}/repos/{r}";

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route(REPO, get(repository))
        .route(&format!("{REPO}/branches"), get(branches))
        .route(&format!("{REPO}/branches/default"), get(default_branch))
        .route(&format!("{REPO}/default-branch"), get(default_branch))
        .route(&format!("{REPO}/pull-requests"), get(pull_requests))
        .route(
            &format!("{REPO}/pull-requests/{{id}}/comments"),
            post(comments::create),
        )
        .route(
            &format!("{REPO}/pull-requests/{{id}}/activities"),
            get(comments::activities),
        )
        .route(
            &format!("{REPO}/pull-requests/{{id}}/comments/{{cid}}"),
            get(comments::get_one).put(comments::update),
        )
        .route(&format!("{REPO}/commits/{{rev}}"), get(commit))
        .route(
            &format!("{REPO}/commits/{{rev}}/builds"),
            post(statuses::server_post),
        )
        .route(
            &format!("{REPO}/webhooks"),
            get(hooks::list).post(hooks::create),
        )
        .route(
            &format!("{REPO}/webhooks/{{id}}"),
            get(hooks::get_one).put(hooks::update).delete(hooks::delete),
        )
        .route("/scm/{*rest}", any(git))
        .fallback(app::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            app::front,
        ))
        .with_state(shared)
}

async fn git(
    AxState(shared): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().trim_start_matches("/scm").to_owned();
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (project, repo) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(name) = repo.strip_suffix(".git") else {
        return app::not_found(AxState(shared)).await;
    };
    if let Err(resp) = rest::repo_dir(&shared, project, name) {
        return resp;
    }
    let root = shared.lock().root.clone();
    git_http::serve(&root, &path, &method, &uri, &headers, body).await
}

fn base(shared: &Shared) -> String {
    shared.site_url.as_str().trim_end_matches('/').to_owned()
}

/// The repository object (also embedded in pull-request refs).
fn repo_value(shared: &Shared, project: &str, slug: &str) -> Value {
    let id = shared.lock().repo_id(project, slug);
    let personal = project.starts_with('~');
    let b = base(shared);
    json!({
        "slug": slug,
        "id": id,
        "name": slug,
        "scmId": "git",
        "state": "AVAILABLE",
        "statusMessage": "Available",
        "forkable": true,
        "project": {
            "key": project,
            "id": 1000 + id,
            "name": project,
            "public": false,
            "type": if personal { "PERSONAL" } else { "NORMAL" },
        },
        "public": false,
        "links": {
            "clone": [{"href": format!("{b}/scm/{project}/{slug}.git"), "name": "http"}],
            "self": [{"href": format!("{b}/projects/{project}/repos/{slug}/browse")}],
        },
    })
}

fn branch_value(name: &str, sha: &str, default: Option<&str>) -> Value {
    json!({
        "id": format!("refs/heads/{name}"),
        "displayId": name,
        "type": "BRANCH",
        "latestCommit": sha,
        "latestChangeset": sha,
        "isDefault": default == Some(name),
    })
}

async fn repository(AxState(shared): AxState<Shared>, Path(params): Path<Params>) -> Response {
    let (pk, r) = (p(&params, "p"), p(&params, "r"));
    match rest::repo_dir(&shared, pk, r) {
        Ok(_) => json(StatusCode::OK, repo_value(&shared, pk, r)),
        Err(resp) => resp,
    }
}

async fn branches(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let (pk, r) = (p(&params, "p"), p(&params, "r"));
    let dir = match rest::repo_dir(&shared, pk, r) {
        Ok(dir) => dir,
        Err(resp) => return resp,
    };
    let default = repos::default_branch(&dir);
    let values = repos::branches(&dir)
        .iter()
        .map(|(name, sha)| branch_value(name, sha, default.as_deref()))
        .collect();
    let page_size = shared.lock().page_size;
    json(
        StatusCode::OK,
        server_page(values, &query_pairs(uri.query()), page_size),
    )
}

async fn default_branch(AxState(shared): AxState<Shared>, Path(params): Path<Params>) -> Response {
    let (pk, r) = (p(&params, "p"), p(&params, "r"));
    let dir = match rest::repo_dir(&shared, pk, r) {
        Ok(dir) => dir,
        Err(resp) => return resp,
    };
    let name = repos::default_branch(&dir);
    let head = name.as_deref().and_then(|n| repos::branch_head(&dir, n));
    match (name, head) {
        (Some(name), Some(sha)) => json(StatusCode::OK, branch_value(&name, &sha, Some(&name))),
        // An empty repository has no default branch yet.
        _ => empty(StatusCode::NO_CONTENT),
    }
}

fn ref_value(shared: &Shared, owner: &str, repo: &str, branch: &str) -> Value {
    let sha = rest::head_of(shared, owner, repo, branch);
    json!({
        "id": format!("refs/heads/{branch}"),
        "displayId": branch,
        "latestCommit": sha,
        "repository": repo_value(shared, owner, repo),
    })
}

fn pull_value(shared: &Shared, rec: &PullRecord) -> Value {
    let (so, sr) = rec
        .spec
        .source_repo
        .clone()
        .unwrap_or_else(|| (rec.spec.owner.clone(), rec.spec.repo.clone()));
    let open = rec.state == "OPEN";
    let b = base(shared);
    json!({
        "id": rec.id,
        "version": 0,
        "title": rec.spec.title,
        "description": "",
        "state": rec.state,
        "open": open,
        "closed": !open,
        "draft": rec.spec.draft,
        "createdDate": rec.created.timestamp_millis(),
        "updatedDate": rec.updated.timestamp_millis(),
        "fromRef": ref_value(shared, &so, &sr, &rec.spec.source_branch),
        "toRef": ref_value(shared, &rec.spec.owner, &rec.spec.repo, &rec.spec.target_branch),
        "locked": false,
        "author": {
            "user": {"name": "fake", "displayName": "Fake Author", "slug": "fake", "type": "NORMAL", "active": true, "id": 1},
            "role": "AUTHOR",
            "approved": false,
            "status": "UNAPPROVED",
        },
        "reviewers": [],
        "participants": [],
        "links": {"self": [{"href": format!(
            "{b}/projects/{}/repos/{}/pull-requests/{}", rec.spec.owner, rec.spec.repo, rec.id
        )}]},
    })
}

async fn pull_requests(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let (pk, r) = (p(&params, "p"), p(&params, "r"));
    if let Err(resp) = rest::repo_dir(&shared, pk, r) {
        return resp;
    }
    let pairs = query_pairs(uri.query());
    let state = crate::page::param(&pairs, "state")
        .unwrap_or("OPEN")
        .to_ascii_uppercase();
    let states: Vec<String> = if state == "ALL" {
        ["OPEN", "MERGED", "DECLINED"].map(String::from).to_vec()
    } else {
        vec![state]
    };
    let values = rest::pulls_of(&shared, pk, r, &states)
        .iter()
        .rev() // Server lists newest first.
        .map(|rec| pull_value(&shared, rec))
        .collect();
    let page_size = shared.lock().page_size;
    json(StatusCode::OK, server_page(values, &pairs, page_size))
}

async fn commit(AxState(shared): AxState<Shared>, Path(params): Path<Params>) -> Response {
    let (pk, r, rev) = (p(&params, "p"), p(&params, "r"), p(&params, "rev"));
    let dir = match rest::repo_dir(&shared, pk, r) {
        Ok(dir) => dir,
        Err(resp) => return resp,
    };
    match repos::resolve(&dir, rev) {
        Some(sha) => json(
            StatusCode::OK,
            json!({"id": sha, "displayId": &sha[..11], "parents": []}),
        ),
        None => shared.error(
            StatusCode::NOT_FOUND,
            &format!("Commit '{rev}' does not exist in repository '{r}'."),
        ),
    }
}
