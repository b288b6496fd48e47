//! Bitbucket Cloud: the site role (OAuth, git) and the API role (REST 2.0).

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::app::{self, json, Shared};
use crate::cloud_json::{self as shape, Side};
use crate::page::{cloud_page, query_pairs};
use crate::repos;
use crate::rest::{self, p, Params};
use crate::{comments, git_http, hooks, statuses};

const REPO: &str = "/2.0/repositories/{w}/{r}";

pub(crate) fn site_router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/site/oauth2/access_token",
            post(crate::oauth::access_token),
        )
        .fallback(git)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            app::front,
        ))
        .with_state(shared)
}

pub(crate) fn api_router(shared: Shared) -> Router {
    Router::new()
        .route(REPO, get(repository))
        .route(&format!("{REPO}/refs/branches"), get(branches))
        .route(&format!("{REPO}/pullrequests"), get(pullrequests))
        .route(
            &format!("{REPO}/pullrequests/{{id}}/comments"),
            get(comments::list).post(comments::create),
        )
        .route(
            &format!("{REPO}/pullrequests/{{id}}/comments/{{cid}}"),
            get(comments::get_one).put(comments::update),
        )
        .route(&format!("{REPO}/commit/{{rev}}"), get(commit))
        .route(
            &format!("{REPO}/commit/{{rev}}/statuses/build"),
            post(statuses::cloud_post),
        )
        .route(
            &format!("{REPO}/hooks"),
            get(hooks::list).post(hooks::create),
        )
        .route(
            &format!("{REPO}/hooks/{{uid}}"),
            get(hooks::get_one).put(hooks::update).delete(hooks::delete),
        )
        .fallback(app::not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            app::front,
        ))
        .with_state(shared)
}

/// `/{workspace}/{repo}.git/...` through `git http-backend`.
async fn git(
    AxState(shared): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (owner, repo) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(name) = repo.strip_suffix(".git") else {
        return app::not_found(AxState(shared)).await;
    };
    let root = match rest::repo_dir(&shared, owner, name) {
        Ok(_) => shared.lock().root.clone(),
        Err(resp) => return resp,
    };
    git_http::serve(&root, &path, &method, &uri, &headers, body).await
}

fn self_url(shared: &Shared, uri: &Uri) -> url::Url {
    let mut url = shared.api_url.clone();
    url.set_path(uri.path());
    url
}

async fn repository(AxState(shared): AxState<Shared>, Path(params): Path<Params>) -> Response {
    let (w, r) = (p(&params, "w"), p(&params, "r"));
    let dir = match rest::repo_dir(&shared, w, r) {
        Ok(dir) => dir,
        Err(resp) => return resp,
    };
    let id = shared.lock().repo_id(w, r);
    let main = repos::default_branch(&dir);
    let body = shape::repository(
        &shared.api_url,
        &shared.site_url,
        &format!("{w}/{r}"),
        id,
        main.as_deref(),
    );
    json(StatusCode::OK, body)
}

async fn branches(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let (w, r) = (p(&params, "w"), p(&params, "r"));
    let dir = match rest::repo_dir(&shared, w, r) {
        Ok(dir) => dir,
        Err(resp) => return resp,
    };
    let (id, page_size) = {
        let mut st = shared.lock();
        (st.repo_id(w, r), st.page_size)
    };
    let full = format!("{w}/{r}");
    let values = repos::branches(&dir)
        .iter()
        .map(|(name, sha)| shape::branch(&shared.api_url, &shared.site_url, &full, id, name, sha))
        .collect();
    let pairs = query_pairs(uri.query());
    json(
        StatusCode::OK,
        cloud_page(values, &pairs, &self_url(&shared, &uri), page_size),
    )
}

/// States named in a BBQL `q` such as `state="OPEN" AND (draft=true OR draft=false)`.
fn q_states(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = q;
    while let Some(at) = rest.find("state") {
        let after = rest[at + 5..].trim_start();
        rest = &rest[at + 5..];
        let Some(value) = after.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if let Some(quoted) = value.strip_prefix('"') {
            if let Some(end) = quoted.find('"') {
                out.push(quoted[..end].to_ascii_uppercase());
            }
        }
    }
    out
}

async fn pullrequests(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let (w, r) = (p(&params, "w"), p(&params, "r"));
    if let Err(resp) = rest::repo_dir(&shared, w, r) {
        return resp;
    }
    let pairs = query_pairs(uri.query());
    let q = crate::page::param(&pairs, "q")
        .unwrap_or_default()
        .to_owned();
    let mut states: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.to_ascii_uppercase())
        .collect();
    if states.is_empty() {
        states.push("OPEN".into());
    }
    let from_q = q_states(&q);
    if !from_q.is_empty() {
        states.retain(|s| from_q.contains(s));
    }
    // Drafts stay out of listings unless the query mentions them, which is why a client
    // has to include them explicitly.
    let with_drafts = q.contains("draft");
    let records: Vec<_> = rest::pulls_of(&shared, w, r, &states)
        .into_iter()
        .filter(|rec| with_drafts || !rec.spec.draft)
        .collect();
    let page_size = shared.lock().page_size;
    let values: Vec<Value> = records.iter().map(|rec| pull_value(&shared, rec)).collect();
    json(
        StatusCode::OK,
        cloud_page(values, &pairs, &self_url(&shared, &uri), page_size),
    )
}

fn pull_value(shared: &Shared, rec: &crate::state::PullRecord) -> Value {
    let (so, sr) = rec
        .spec
        .source_repo
        .clone()
        .unwrap_or_else(|| (rec.spec.owner.clone(), rec.spec.repo.clone()));
    let (src_sha, dst_sha) = (
        rest::head_of(shared, &so, &sr, &rec.spec.source_branch),
        rest::head_of(
            shared,
            &rec.spec.owner,
            &rec.spec.repo,
            &rec.spec.target_branch,
        ),
    );
    let (src_id, dst_id) = {
        let mut st = shared.lock();
        (
            st.repo_id(&so, &sr),
            st.repo_id(&rec.spec.owner, &rec.spec.repo),
        )
    };
    let (src_full, dst_full) = (
        format!("{so}/{sr}"),
        format!("{}/{}", rec.spec.owner, rec.spec.repo),
    );
    let source = Side {
        branch: &rec.spec.source_branch,
        sha: src_sha.as_deref(),
        full_name: &src_full,
        repo_id: src_id,
    };
    let destination = Side {
        branch: &rec.spec.target_branch,
        sha: dst_sha.as_deref(),
        full_name: &dst_full,
        repo_id: dst_id,
    };
    shape::pullrequest(
        &shared.api_url,
        &shared.site_url,
        rec,
        &source,
        &destination,
    )
}

async fn commit(AxState(shared): AxState<Shared>, Path(params): Path<Params>) -> Response {
    let (w, r, rev) = (p(&params, "w"), p(&params, "r"), p(&params, "rev"));
    let dir = match rest::repo_dir(&shared, w, r) {
        Ok(dir) => dir,
        Err(resp) => return resp,
    };
    match repos::resolve(&dir, rev) {
        Some(sha) => {
            let mut body = shape::commit(&shared.api_url, &format!("{w}/{r}"), &sha);
            body["repository"] = shape::repo_ref(
                &shared.api_url,
                &shared.site_url,
                &format!("{w}/{r}"),
                shared.lock().repo_id(w, r),
            );
            json(StatusCode::OK, body)
        }
        None => shared.error(StatusCode::NOT_FOUND, &format!("Commit not found: {rev}")),
    }
}

#[cfg(test)]
mod tests {
    use super::q_states;

    #[test]
    fn bbql_states() {
        assert_eq!(q_states(r#"state="OPEN""#), vec!["OPEN"]);
        assert_eq!(
            q_states(r#"state = "OPEN" AND (draft = true OR draft = false)"#),
            vec!["OPEN"]
        );
        assert_eq!(
            q_states(r#"(state="MERGED" OR state="declined")"#),
            vec!["MERGED", "DECLINED"]
        );
        assert!(q_states("source.branch.name=\"x\"").is_empty());
    }
}
