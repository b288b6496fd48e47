//! Helpers both REST flavours share: repository lookup, JSON bodies, pull-request filtering.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::app::Shared;
use crate::repos;
use crate::state::PullRecord;

pub(crate) type Params = HashMap<String, String>;

pub(crate) fn p<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

/// The bare repository behind `owner/name`, or the flavour's 404.
pub(crate) fn repo_dir(shared: &Shared, owner: &str, name: &str) -> Result<PathBuf, Response> {
    let root = shared.lock().root.clone();
    let dir = repos::repo_path(&root, owner, name);
    if owner.is_empty() || name.is_empty() || !dir.join("HEAD").is_file() {
        return Err(shared.error(
            StatusCode::NOT_FOUND,
            &format!("Repository {owner}/{name} not found"),
        ));
    }
    Ok(dir)
}

/// Parses a JSON request body and records it for [`crate::FakeBitbucket::request_bodies`].
pub(crate) fn body_json(shared: &Shared, path: &str, body: &Bytes) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| shared.error(StatusCode::BAD_REQUEST, &format!("Invalid JSON: {e}")))?;
    shared.lock().bodies.push((path.to_owned(), value.clone()));
    Ok(value)
}

pub(crate) fn str_field(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Pull requests of `owner/name` whose state is in `states` (upper case).
pub(crate) fn pulls_of(
    shared: &Shared,
    owner: &str,
    name: &str,
    states: &[String],
) -> Vec<PullRecord> {
    shared
        .lock()
        .pulls
        .iter()
        .filter(|r| r.spec.owner == owner && r.spec.repo == name)
        .filter(|r| states.iter().any(|s| s.eq_ignore_ascii_case(&r.state)))
        .cloned()
        .collect()
}

/// Head of `branch` in `(owner, repo)`'s bare repository, if both exist.
pub(crate) fn head_of(shared: &Shared, owner: &str, repo: &str, branch: &str) -> Option<String> {
    let root = shared.lock().root.clone();
    repos::branch_head(&repos::repo_path(&root, owner, repo), branch)
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
