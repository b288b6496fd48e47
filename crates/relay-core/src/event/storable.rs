//! Values valid in JSON that the relay could not store or act on: a NUL character in any text
//! (PostgreSQL's `text` refuses it, git refuses it in a ref) and a pull request id beyond
//! PostgreSQL's `bigint`. Refusing them at parse time makes such a delivery fail alone, with
//! its reason, instead of aborting the transaction it is planned in with its neighbours.

use super::{Event, ParseError, PullRequest, RefChange};

/// Checks every value of `event` that is stored or used as a name.
pub fn check_storable(event: &Event) -> Result<(), ParseError> {
    match event {
        Event::Push { changes, .. } => changes.iter().try_for_each(check_change),
        Event::PullRequest { pr, .. } => check_pull_request(pr),
        Event::Ping => Ok(()),
        Event::Ignored { event_key, reason } => {
            text("event key", event_key)?;
            text("reason", reason)
        }
        Event::Snapshot {
            branches,
            pull_requests,
        } => {
            for (name, _) in branches {
                text("branches[].name", name)?;
            }
            pull_requests.iter().try_for_each(check_pull_request)
        }
        Event::Transition { environment, .. } => text("environment", environment),
        Event::Sweep { .. } => Ok(()),
    }
}

fn check_change(change: &RefChange) -> Result<(), ParseError> {
    text("changes[].name", &change.name)
}

/// Checks one pull request (a webhook's or a listing's).
pub fn check_pull_request(pr: &PullRequest) -> Result<(), ParseError> {
    if i64::try_from(pr.id).is_err() {
        return Err(ParseError::invalid(
            "pull request id",
            format!("{} is out of range (at most {})", pr.id, i64::MAX),
        ));
    }
    text("pull request title", &pr.title)?;
    for (side, endpoint) in [("source", &pr.source), ("target", &pr.target)] {
        text(&format!("pull request {side} branch"), &endpoint.branch)?;
        text(
            &format!("pull request {side} repository"),
            &endpoint.repository.full_name,
        )?;
        if let Some(id) = &endpoint.repository.id {
            text(&format!("pull request {side} repository id"), id)?;
        }
    }
    Ok(())
}

fn text(field: &str, value: &str) -> Result<(), ParseError> {
    if value.contains('\0') {
        return Err(ParseError::invalid(
            field,
            format!(
                "{} (contains a NUL character)",
                super::truncate_for_error(&value.replace('\0', "\\u0000"))
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn server_push(branch: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "eventKey": "repo:refs_changed",
            "changes": [{
                "ref": {"id": format!("refs/heads/{branch}"), "displayId": branch, "type": "BRANCH"},
                "refId": format!("refs/heads/{branch}"),
                "fromHash": "0000000000000000000000000000000000000000",
                "toHash": SHA,
                "type": "ADD"
            }]
        }))
        .unwrap()
    }

    fn cloud_pr(id: u64) -> Vec<u8> {
        let side = serde_json::json!({
            "branch": {"name": "feature"},
            "commit": {"hash": "0123456789ab"},
            "repository": {"full_name": "ws/repo", "uuid": "{1}"}
        });
        serde_json::to_vec(&serde_json::json!({
            "pullrequest": {"id": id, "title": "t", "state": "OPEN",
                            "source": side, "destination": side}
        }))
        .unwrap()
    }

    #[test]
    fn a_nul_in_a_branch_name_is_a_parse_error() {
        assert!(parse("repo:refs_changed", &server_push("ok-1")).is_ok());
        let err = parse("repo:refs_changed", &server_push("bad\u{0}x")).unwrap_err();
        assert_eq!(err.label(), "invalid_value");
        assert!(err.to_string().contains("NUL"), "{err}");
        assert!(!err.to_string().contains('\0'), "{err}");
    }

    #[test]
    fn a_pull_request_id_beyond_bigint_is_a_parse_error() {
        assert!(parse("pullrequest:created", &cloud_pr(i64::MAX as u64)).is_ok());
        let err = parse("pullrequest:created", &cloud_pr(1 << 63)).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn snapshots_are_checked_too() {
        let snapshot = Event::Snapshot {
            branches: vec![(
                "a\u{0}".into(),
                super::super::CommitHash::parse(SHA).unwrap(),
            )],
            pull_requests: vec![],
        };
        assert!(check_storable(&snapshot).is_err());
    }
}
