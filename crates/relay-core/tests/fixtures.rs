//! Every fixture body parses to the expected normalized event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{all_fixtures, hash};
use relay_core::event::{PrEndpoint, RepoRef};
use relay_core::{Event, PrAction, PrState, PullRequest, RefChange, RefKind};

const CLOUD_REPO: (&str, &str) = ("brydzewski/foo", "{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}");
const SERVER_REPO: (&str, &str) = ("PRJ/my-repo", "1");

fn end(branch: &str, commit: &str, repo: (&str, &str)) -> PrEndpoint {
    PrEndpoint {
        branch: branch.into(),
        commit: hash(commit),
        repository: RepoRef {
            full_name: repo.0.into(),
            id: Some(repo.1.into()),
        },
    }
}

fn pr(
    action: PrAction,
    id: u64,
    title: &str,
    state: PrState,
    source: PrEndpoint,
    target: PrEndpoint,
    updated: i64,
) -> Event {
    Event::PullRequest {
        action,
        pr: PullRequest {
            id,
            title: title.into(),
            state,
            source,
            target,
            draft: false,
            updated_at_ms: Some(updated),
        },
    }
}

fn change(kind: RefKind, name: &str, old: Option<&str>, new: Option<&str>) -> RefChange {
    RefChange {
        kind,
        name: name.into(),
        old: old.map(hash),
        new: new.map(hash),
        forced: false,
    }
}

fn push(changes: Vec<RefChange>) -> Event {
    Event::Push {
        changes,
        truncated: false,
    }
}

fn ignored(key: &str) -> Event {
    Event::Ignored {
        event_key: key.into(),
        reason: "comments do not change environments".into(),
    }
}

const C_141: &str = "141977fedf5cf35aa290ac87d4b5177ac4cd9de1";
const S_823: &str = "823b2230a56056231c9425d63758fa87078a66b4";
const S_B9E: &str = "b9eaed50a03c073b20dfa82e5e753d295e7f0e56";
const S_208: &str = "208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e";
const S_C00: &str = "c00d0f269a9844dd168f72f6a9d78a9cff49a318";

fn expected(name: &str) -> Event {
    use PrAction::*;
    use RefKind::{Branch, Tag};
    let master_c = || end("master", "7d1a175411ef", CLOUD_REPO);
    let server_declined = |action, updated| {
        pr(
            action,
            2,
            "added LICENSE",
            PrState::Declined,
            end("develop", S_B9E, SERVER_REPO),
            end("master", S_823, SERVER_REPO),
            updated,
        )
    };
    let server_merged = |updated| {
        pr(
            Merged,
            3,
            "Develop",
            PrState::Merged,
            end("develop", S_B9E, SERVER_REPO),
            end("master", S_823, SERVER_REPO),
            updated,
        )
    };
    let server_open = |updated| {
        pr(
            Opened,
            2,
            "added LICENSE",
            PrState::Open,
            end("develop", S_208, SERVER_REPO),
            end("master", S_823, SERVER_REPO),
            updated,
        )
    };
    match name {
        "bitbucket-cloud/pr_comment_created.json" => ignored("pullrequest:comment_created"),
        "bitbucket-cloud/pr_comment_deleted.json" => ignored("pullrequest:comment_deleted"),
        "bitbucket-cloud/pr_created.json" => pr(
            Opened,
            1,
            "Awesome new feature",
            PrState::Open,
            end("develop", "507a576e59b3", CLOUD_REPO),
            master_c(),
            1_530_568_299_532,
        ),
        "bitbucket-cloud/pr_updated.json" => pr(
            Updated,
            1,
            "Awesome new feature",
            PrState::Open,
            end("develop", "0704fc5beccc", CLOUD_REPO),
            master_c(),
            1_530_568_474_210,
        ),
        "bitbucket-cloud/pr_fulfilled.json" => pr(
            Merged,
            1,
            "Awesome new feature",
            PrState::Merged,
            end("develop", "0704fc5beccc", CLOUD_REPO),
            master_c(),
            1_530_581_285_903,
        ),
        "bitbucket-cloud/pr_declined.json" => pr(
            Declined,
            2,
            "update README",
            PrState::Declined,
            end("develop", "6ca9fe26898a", CLOUD_REPO),
            end("master", "4f8f6de9d0ff", CLOUD_REPO),
            1_530_582_240_030,
        ),
        "bitbucket-cloud/push.json" => push(vec![change(
            Branch,
            "master",
            Some("40e7580cf11311d84a6e5e97e2cbba6df1675750"),
            Some(C_141),
        )]),
        "bitbucket-cloud/push_branch_create.json" => {
            push(vec![change(Branch, "develop", None, Some(C_141))])
        }
        "bitbucket-cloud/push_branch_delete.json" => {
            push(vec![change(Branch, "develop", Some(C_141), None)])
        }
        "bitbucket-cloud/push_tag_create.json" => {
            push(vec![change(Tag, "feature/x", None, Some(C_141))])
        }
        "bitbucket-cloud/push_tag_delete.json" => {
            push(vec![change(Tag, "feature/x", Some(C_141), None)])
        }
        "bitbucket-server/pr_declined.json" => server_declined(Declined, 1_530_819_048_868),
        "bitbucket-server/pr_declined_iso_dates.json" => {
            server_declined(Declined, 1_530_819_048_000)
        }
        "bitbucket-server/pr_deleted.json" => server_declined(Deleted, 1_530_819_048_868),
        "bitbucket-server/pr_from_ref_updated.json" => pr(
            SourceUpdated,
            2,
            "added LICENSE",
            PrState::Open,
            end("feature-2", S_C00, SERVER_REPO),
            end("master", S_823, SERVER_REPO),
            1_637_661_772_258,
        ),
        "bitbucket-server/pr_merged.json" => server_merged(1_530_819_200_099),
        "bitbucket-server/pr_merged_iso_dates.json" => server_merged(1_530_819_200_000),
        "bitbucket-server/pr_modified_meta.json" => pr(
            Modified {
                previous_target: Some("master".into()),
            },
            6,
            "Clean README.md",
            PrState::Open,
            end(
                "cleanup",
                "a268fca7b65055e13f60ac1a2c9a527615f113ca",
                ("~jcitizen/my-repo", "12"),
            ),
            end(
                "master",
                "a4dae7792cf772d72149730091141ef48bba8697",
                SERVER_REPO,
            ),
            1_637_765_028_112,
        ),
        "bitbucket-server/pr_modified_toref.json" => pr(
            Modified {
                previous_target: Some("wrong".into()),
            },
            2,
            "added LICENSE",
            PrState::Open,
            end("feature-2", S_C00, SERVER_REPO),
            end(
                "master",
                "0667def9e377a8fa76ce67b6d4e53e21b246f030",
                SERVER_REPO,
            ),
            1_637_673_380_977,
        ),
        "bitbucket-server/pr_open.json" => server_open(1_530_818_490_848),
        "bitbucket-server/pr_open_iso_dates.json" => server_open(1_530_818_490_000),
        "bitbucket-server/push.json" => push(vec![change(
            Branch,
            "master",
            Some("5c64a07cd6c0f21b753bf261ef059c7e7633c50a"),
            Some(S_823),
        )]),
        "bitbucket-server/push_branch_create.json" => {
            push(vec![change(Branch, "develop", None, Some(S_208))])
        }
        "bitbucket-server/push_branch_delete.json" => {
            push(vec![change(Branch, "develop", Some(S_208), None)])
        }
        "bitbucket-server/push_tag_create.json" => {
            push(vec![change(Tag, "v1.1.0", None, Some(S_823))])
        }
        "bitbucket-server/push_tag_delete.json" => {
            push(vec![change(Tag, "v1.1.0", Some(S_823), None)])
        }
        "bitbucket-server/push_v5.json" => push(vec![change(
            Branch,
            "trangineni/devtfvars-1685475548410",
            Some("b2b710209761a3fab9fc867aad7b7725fd0fd028"),
            Some("51a33664b6d7fb5aa15063064eb230362cd02e9e"),
        )]),
        other => panic!("fixture {other} has no expectation: add one"),
    }
}

#[test]
fn every_fixture_parses_to_its_expected_event() {
    for f in all_fixtures() {
        let parsed =
            relay_core::parse(&f.event_key, &f.body).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(parsed, expected(&f.name), "{}", f.name);
        // The normalized form survives a JSON round trip (it is stored as a decision input).
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(
            serde_json::from_str::<Event>(&json).unwrap(),
            parsed,
            "{}",
            f.name
        );
    }
}

#[test]
fn cloud_pull_request_hashes_are_abbreviated_and_server_ones_full() {
    for f in all_fixtures() {
        if let Ok(Event::PullRequest { pr, .. }) = relay_core::parse(&f.event_key, &f.body) {
            let cloud = f.name.starts_with("bitbucket-cloud");
            assert_eq!(pr.source.commit.is_full(), !cloud, "{}", f.name);
            assert_eq!(pr.target.commit.is_full(), !cloud, "{}", f.name);
        }
    }
}

#[test]
fn only_the_personal_fork_is_a_fork() {
    for f in all_fixtures() {
        if let Ok(Event::PullRequest { pr, .. }) = relay_core::parse(&f.event_key, &f.body) {
            assert_eq!(
                pr.is_fork(),
                f.name.ends_with("pr_modified_meta.json"),
                "{}",
                f.name
            );
        }
    }
}

#[test]
fn iso_and_epoch_dates_agree_to_the_second() {
    for (epoch, iso) in [
        ("pr_open", "pr_open_iso_dates"),
        ("pr_merged", "pr_merged_iso_dates"),
        ("pr_declined", "pr_declined_iso_dates"),
    ] {
        let at = |n: &str| match common::fixture_event(&format!("bitbucket-server/{n}.json")) {
            Event::PullRequest { pr, .. } => pr.updated_at_ms.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(at(epoch) / 1000, at(iso) / 1000, "{epoch}");
    }
}

#[test]
fn server_body_must_agree_with_the_header() {
    let f = all_fixtures()
        .into_iter()
        .find(|f| f.name == "bitbucket-server/pr_open.json")
        .unwrap();
    let err = relay_core::parse("pr:merged", &f.body).unwrap_err();
    assert!(
        matches!(err, relay_core::ParseError::EventKeyMismatch { .. }),
        "{err}"
    );
}
