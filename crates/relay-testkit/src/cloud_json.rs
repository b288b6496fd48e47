//! Bitbucket Cloud 2.0 object shapes (repository, branch, pullrequest, webhook_subscription,
//! commitstatus), trimmed to the documented fields a client can rely on.

use serde_json::{json, Value};
use url::Url;

use crate::state::{PullRecord, RecordedStatus, StoredHook};

/// Cloud repository UUIDs are braced; derive a stable one from the fake's numeric id.
pub(crate) fn uuid(id: u64) -> String {
    format!("{{00000000-0000-4000-8000-{id:012x}}}")
}

fn href(base: &Url, path: &str) -> Value {
    json!({"href": format!("{}{}", base.as_str().trim_end_matches('/'), path)})
}

/// The small repository object embedded in pull requests and webhooks.
pub(crate) fn repo_ref(api: &Url, site: &Url, full_name: &str, id: u64) -> Value {
    let name = full_name.rsplit('/').next().unwrap_or(full_name);
    json!({
        "type": "repository",
        "full_name": full_name,
        "name": name,
        "uuid": uuid(id),
        "links": {
            "self": href(api, &format!("/2.0/repositories/{full_name}")),
            "html": href(site, &format!("/{full_name}")),
        },
    })
}

pub(crate) fn repository(
    api: &Url,
    site: &Url,
    full_name: &str,
    id: u64,
    mainbranch: Option<&str>,
) -> Value {
    let mut repo = repo_ref(api, site, full_name, id);
    let (workspace, slug) = full_name.split_once('/').unwrap_or((full_name, full_name));
    repo["slug"] = json!(slug);
    repo["scm"] = json!("git");
    repo["is_private"] = json!(true);
    repo["fork_policy"] = json!("no_public_forks");
    repo["workspace"] = json!({"type": "workspace", "slug": workspace});
    repo["mainbranch"] =
        mainbranch.map_or(Value::Null, |name| json!({"name": name, "type": "branch"}));
    repo["links"]["clone"] = json!([
        {"name": "https", "href": format!("{}/{full_name}.git", site.as_str().trim_end_matches('/'))},
    ]);
    repo
}

pub(crate) fn branch(
    api: &Url,
    site: &Url,
    full_name: &str,
    id: u64,
    name: &str,
    sha: &str,
) -> Value {
    json!({
        "type": "branch",
        "name": name,
        "target": {
            "type": "commit",
            "hash": sha,
            "repository": repo_ref(api, site, full_name, id),
            "links": {"self": href(api, &format!("/2.0/repositories/{full_name}/commit/{sha}"))},
        },
        "links": {"self": href(api, &format!("/2.0/repositories/{full_name}/refs/branches/{name}"))},
    })
}

pub(crate) fn commit(api: &Url, full_name: &str, sha: &str) -> Value {
    json!({
        "type": "commit",
        "hash": sha,
        "links": {"self": href(api, &format!("/2.0/repositories/{full_name}/commit/{sha}"))},
    })
}

/// One side of a pull request. Cloud abbreviates commit hashes here to 12 characters.
pub(crate) struct Side<'a> {
    pub branch: &'a str,
    pub sha: Option<&'a str>,
    pub full_name: &'a str,
    pub repo_id: u64,
}

fn side(api: &Url, site: &Url, s: &Side<'_>) -> Value {
    let commit = s.sha.map_or(Value::Null, |sha| {
        let short = &sha[..sha.len().min(12)];
        json!({
            "hash": short,
            "type": "commit",
            "links": {"self": href(api, &format!("/2.0/repositories/{}/commit/{short}", s.full_name))},
        })
    });
    json!({
        "branch": {"name": s.branch},
        "commit": commit,
        "repository": repo_ref(api, site, s.full_name, s.repo_id),
    })
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

pub(crate) fn pullrequest(
    api: &Url,
    site: &Url,
    rec: &PullRecord,
    source: &Side<'_>,
    destination: &Side<'_>,
) -> Value {
    let full = destination.full_name;
    let self_path = format!("/2.0/repositories/{full}/pullrequests/{}", rec.id);
    json!({
        "type": "pullrequest",
        "id": rec.id,
        "title": rec.spec.title,
        "description": "",
        "summary": {"raw": "", "markup": "markdown", "html": "", "type": "rendered"},
        "state": rec.state,
        "draft": rec.spec.draft,
        "author": {"type": "user", "display_name": "Fake Author", "uuid": "{00000000-0000-4000-8000-0000000000aa}"},
        "source": side(api, site, source),
        "destination": side(api, site, destination),
        "merge_commit": null,
        "close_source_branch": false,
        "closed_by": null,
        "reason": "",
        "comment_count": 0,
        "task_count": 0,
        "participants": [],
        "reviewers": [],
        "created_on": time(&rec.created),
        "updated_on": time(&rec.updated),
        "links": {
            "self": href(api, &self_path),
            "html": href(site, &format!("/{full}/pull-requests/{}", rec.id)),
            "commits": href(api, &format!("{self_path}/commits")),
            "diff": href(api, &format!("{self_path}/diff")),
        },
    })
}

pub(crate) fn hook(api: &Url, site: &Url, full_name: &str, repo_id: u64, h: &StoredHook) -> Value {
    let created = chrono::DateTime::from_timestamp_millis(h.created_ms).unwrap_or_default();
    json!({
        "type": "webhook_subscription",
        "uuid": h.id,
        "url": h.url,
        "description": h.description,
        "subject_type": "repository",
        "subject": repo_ref(api, site, full_name, repo_id),
        "active": h.active,
        "created_at": time(&created),
        "events": h.events,
        // Cloud never returns the secret, only whether one is set.
        "secret_set": h.secret.as_deref().is_some_and(|s| !s.is_empty()),
        "skip_cert_verification": false,
        "links": {"self": href(api, &format!("/2.0/repositories/{full_name}/hooks/{}", h.id))},
    })
}

pub(crate) fn status(api: &Url, s: &RecordedStatus) -> Value {
    let full = format!("{}/{}", s.owner, s.repo);
    json!({
        "type": "build",
        "key": s.key,
        "state": s.state,
        "url": s.url,
        "name": s.name,
        "description": s.description.clone().unwrap_or_default(),
        "refname": null,
        "commit": commit(api, &full, &s.commit),
        "links": {"self": href(api, &format!("/2.0/repositories/{full}/commit/{}/statuses/build/{}", s.commit, s.key))},
    })
}
