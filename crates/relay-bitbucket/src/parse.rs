//! Reading Bitbucket JSON defensively: shape errors become [`Error::InvalidResponse`], never
//! panics.

use relay_core::event::parse_pull_request_object;
use relay_core::{CommitHash, IntegrationType, PullRequest};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::types::Branch;

pub(crate) fn string(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub(crate) fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A complete 40-character commit id; listings and resolutions must not hand out less.
pub(crate) fn full_hash(raw: Option<&str>) -> Result<CommitHash> {
    let raw = raw.ok_or_else(|| Error::InvalidResponse("commit without a hash".into()))?;
    let hash = CommitHash::parse(raw)
        .map_err(|e| Error::InvalidResponse(format!("commit hash {raw:?}: {e}")))?;
    if !hash.is_full() {
        return Err(Error::InvalidResponse(format!(
            "commit hash {raw:?} is abbreviated"
        )));
    }
    Ok(hash)
}

pub(crate) fn branch(name: Option<String>, hash: Option<&str>) -> Result<Branch> {
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::InvalidResponse("branch without a name".into()))?;
    Ok(Branch {
        commit: full_hash(hash)?,
        name,
    })
}

/// Converts listing entries with the same code as webhook payloads, and keeps the open ones
/// (a listing asked for OPEN, but a stale cache could still slip in a closed one).
pub(crate) fn open_pull_requests(
    provider: IntegrationType,
    values: Vec<Value>,
) -> Result<Vec<PullRequest>> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| Error::InvalidResponse(format!("pull request: {e}")))?;
        let pr = parse_pull_request_object(provider, &bytes)
            .map_err(|e| Error::InvalidResponse(format!("pull request: {e}")))?;
        if pr.state.is_open() {
            out.push(pr);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_must_be_full() {
        assert!(full_hash(Some("507a576e59b3")).is_err());
        assert!(full_hash(None).is_err());
        let sha = "208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e";
        assert_eq!(full_hash(Some(sha)).unwrap().as_str(), sha);
        assert!(branch(None, Some(sha)).is_err());
    }

    #[test]
    fn listing_objects_convert() {
        let repo = json!({"slug": "r", "id": 1, "project": {"key": "PRJ"}});
        let side = |branch: &str, sha: &str| {
            json!({"id": format!("refs/heads/{branch}"), "displayId": branch,
                   "latestCommit": sha, "repository": repo})
        };
        let pr = json!({
            "id": 2, "title": "t", "state": "OPEN", "updatedDate": 1530818490848i64,
            "fromRef": side("develop", "208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e"),
            "toRef": side("master", "823b2230a56056231c9425d63758fa87078a66b4"),
        });
        let mut merged = pr.clone();
        merged["state"] = json!("MERGED");
        let prs = open_pull_requests(IntegrationType::Server, vec![pr, merged]).unwrap();
        assert_eq!(prs.len(), 1);
        assert_eq!(prs[0].id, 2);
        assert_eq!(prs[0].source.branch, "develop");
        let bad = open_pull_requests(IntegrationType::Server, vec![json!({"id": 1})]);
        assert!(matches!(bad, Err(Error::InvalidResponse(_))));
    }
}
