//! Repository webhooks CRUD, Cloud (`/hooks`, `{uuid}` ids, `secret_set`) and Server
//! (`/webhooks`, numeric ids, `configuration.secret`).

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use crate::app::{empty, json, Shared};
use crate::cloud_json;
use crate::page::{cloud_page, query_pairs, server_page};
use crate::rest::{self, now_ms, p, str_field, Params};
use crate::state::{Flavor, StoredHook};

type Key = (String, String);

/// Repository exists and the token may administer webhooks; returns the hooks' key.
fn admin(shared: &Shared, params: &Params) -> Result<Key, Response> {
    let (owner, repo) = match shared.flavor() {
        Flavor::Cloud => (p(params, "w"), p(params, "r")),
        Flavor::Server => (p(params, "p"), p(params, "r")),
    };
    rest::repo_dir(shared, owner, repo)?;
    if !shared.lock().webhook_admin {
        let message = match shared.flavor() {
            Flavor::Cloud => "Your credentials lack one or more required privilege scopes.",
            Flavor::Server => "You are not permitted to access this resource",
        };
        return Err(shared.error(StatusCode::FORBIDDEN, message));
    }
    Ok((owner.to_owned(), repo.to_owned()))
}

fn bad(shared: &Shared, message: &str) -> Response {
    shared.error(StatusCode::BAD_REQUEST, message)
}

/// Applies the fields present in `body` onto `hook`; `None` when the result is invalid.
fn apply(hook: &mut StoredHook, body: &Value, flavor: Flavor) -> Result<(), &'static str> {
    let name_field = match flavor {
        Flavor::Cloud => "description",
        Flavor::Server => "name",
    };
    if let Some(v) = str_field(body, name_field) {
        hook.description = v;
    }
    if let Some(v) = str_field(body, "url") {
        hook.url = v;
    }
    if let Some(v) = body.get("active").and_then(Value::as_bool) {
        hook.active = v;
    }
    if let Some(list) = body.get("events").and_then(Value::as_array) {
        hook.events = list
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect();
    }
    // Cloud: a missing `secret` keeps the old one and `null` clears it. Server keeps it in
    // `configuration.secret`.
    let secret = match flavor {
        Flavor::Cloud => body.get("secret"),
        Flavor::Server => body.get("configuration").and_then(|c| c.get("secret")),
    };
    match secret {
        Some(Value::String(s)) => hook.secret = Some(s.clone()),
        Some(Value::Null) => hook.secret = None,
        _ => {}
    }
    let url_ok = url::Url::parse(&hook.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if !url_ok {
        return Err("url: Enter a valid URL.");
    }
    if hook.events.is_empty() || hook.events.iter().any(|e| !e.contains(':')) {
        return Err("events: Enter at least one valid event.");
    }
    if flavor == Flavor::Server && hook.description.is_empty() {
        return Err("name: A name is required.");
    }
    hook.updated_ms = now_ms();
    Ok(())
}

fn find<'a>(hooks: &'a mut [StoredHook], id: &str) -> Option<&'a mut StoredHook> {
    let bare = |s: &str| {
        s.trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase()
    };
    hooks.iter_mut().find(|h| bare(&h.id) == bare(id))
}

fn render(shared: &Shared, key: &Key, hook: &StoredHook) -> Value {
    match shared.flavor() {
        Flavor::Cloud => {
            let id = shared.lock().repo_id(&key.0, &key.1);
            let full = format!("{}/{}", key.0, key.1);
            cloud_json::hook(&shared.api_url, &shared.site_url, &full, id, hook)
        }
        // The secret is write-only here too: clients learn only what they sent.
        Flavor::Server => json!({
            "id": hook.id.parse::<u64>().unwrap_or_default(),
            "name": hook.description,
            "createdDate": hook.created_ms,
            "updatedDate": hook.updated_ms,
            "events": hook.events,
            "configuration": {},
            "url": hook.url,
            "active": hook.active,
            "scopeType": "repository",
        }),
    }
}

pub(crate) async fn list(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
) -> Response {
    let key = match admin(&shared, &params) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let (hooks, page_size) = {
        let st = shared.lock();
        (
            st.hooks.get(&key).cloned().unwrap_or_default(),
            st.page_size,
        )
    };
    let values: Vec<Value> = hooks.iter().map(|h| render(&shared, &key, h)).collect();
    let pairs = query_pairs(uri.query());
    let body = match shared.flavor() {
        Flavor::Cloud => {
            let mut url = shared.api_url.clone();
            url.set_path(uri.path());
            cloud_page(values, &pairs, &url, page_size)
        }
        Flavor::Server => server_page(values, &pairs, page_size),
    };
    json(StatusCode::OK, body)
}

pub(crate) async fn create(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let key = match admin(&shared, &params) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let body = match rest::body_json(&shared, uri.path(), &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let flavor = shared.flavor();
    let id = match flavor {
        Flavor::Cloud => cloud_json::uuid(1 << 40 | shared.lock().next_id()),
        Flavor::Server => shared.lock().next_id().to_string(),
    };
    let mut hook = StoredHook {
        id,
        url: String::new(),
        description: String::new(),
        events: Vec::new(),
        active: true,
        secret: None,
        created_ms: now_ms(),
        updated_ms: now_ms(),
    };
    if let Err(message) = apply(&mut hook, &body, flavor) {
        return bad(&shared, message);
    }
    let rendered = render(&shared, &key, &hook);
    shared.lock().hooks.entry(key).or_default().push(hook);
    json(StatusCode::CREATED, rendered)
}

pub(crate) async fn get_one(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
) -> Response {
    let key = match admin(&shared, &params) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let found = {
        let mut st = shared.lock();
        let hooks = st.hooks.entry(key.clone()).or_default();
        find(hooks, hook_id(&params)).cloned()
    };
    match found {
        Some(h) => json(StatusCode::OK, render(&shared, &key, &h)),
        None => shared.error(StatusCode::NOT_FOUND, "Webhook not found"),
    }
}

fn hook_id(params: &Params) -> &str {
    params
        .get("uid")
        .or_else(|| params.get("id"))
        .map(String::as_str)
        .unwrap_or_default()
}

pub(crate) async fn update(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let key = match admin(&shared, &params) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let body = match rest::body_json(&shared, uri.path(), &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let flavor = shared.flavor();
    let result = {
        let mut st = shared.lock();
        let hooks = st.hooks.entry(key.clone()).or_default();
        find(hooks, hook_id(&params)).map(|hook| {
            let mut edited = hook.clone();
            apply(&mut edited, &body, flavor).map(|()| {
                *hook = edited.clone();
                edited
            })
        })
    };
    match result {
        Some(Ok(hook)) => json(StatusCode::OK, render(&shared, &key, &hook)),
        Some(Err(message)) => bad(&shared, message),
        None => shared.error(StatusCode::NOT_FOUND, "Webhook not found"),
    }
}

pub(crate) async fn delete(
    AxState(shared): AxState<Shared>,
    Path(params): Path<Params>,
) -> Response {
    let key = match admin(&shared, &params) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let removed = {
        let mut st = shared.lock();
        let hooks = st.hooks.entry(key).or_default();
        let before = hooks.len();
        let id = hook_id(&params).to_owned();
        let bare = |s: &str| {
            s.trim_matches(|c| c == '{' || c == '}')
                .to_ascii_lowercase()
        };
        hooks.retain(|h| bare(&h.id) != bare(&id));
        hooks.len() != before
    };
    if removed {
        empty(StatusCode::NO_CONTENT)
    } else {
        shared.error(StatusCode::NOT_FOUND, "Webhook not found")
    }
}
