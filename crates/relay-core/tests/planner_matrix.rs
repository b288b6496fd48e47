//! Every fixture event × the full option matrix (fetch × prune × build PRs × post-merge) ×
//! two stored states (nothing yet; a repository the relay already tracks), with the exact
//! environments created, deleted, built and deployed, and replay idempotence throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use relay_core::naming::{find_conflicts, is_valid_name, preferred_name};
use relay_core::{
    Environment, EnvironmentChange, EnvironmentKind, EnvironmentStatus as St, Event, JobSpec, Plan,
    PrState, Settings,
};

#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    creates: Vec<String>,
    deletes: Vec<String>,
    builds: Vec<String>,
    deploys: Vec<String>,
}

impl Outcome {
    fn of(plan: &Plan) -> Self {
        let mut o = Outcome::default();
        for c in &plan.changes {
            match c {
                EnvironmentChange::Create { environment } => {
                    o.creates.push(environment.name.clone())
                }
                EnvironmentChange::Delete { name } => o.deletes.push(name.clone()),
                _ => {}
            }
        }
        for j in &plan.jobs {
            match j {
                JobSpec::BuildPullRequest { environment, .. } => o.builds.push(environment.clone()),
                JobSpec::Deploy { environment, .. } => o.deploys.push(environment.clone()),
                _ => {}
            }
        }
        for v in [
            &mut o.creates,
            &mut o.deletes,
            &mut o.builds,
            &mut o.deploys,
        ] {
            v.sort();
        }
        o
    }
}

fn names(v: &[&str], when: bool) -> Vec<String> {
    if when {
        v.iter().map(|s| s.to_string()).collect()
    } else {
        vec![]
    }
}

fn with_target(mut e: Environment, target_commit: &str) -> Environment {
    e.pr.as_mut().unwrap().target_commit = Some(hash(target_commit));
    e
}

const C_MASTER: &str = "40e7580cf11311d84a6e5e97e2cbba6df1675750";
const C_141: &str = "141977fedf5cf35aa290ac87d4b5177ac4cd9de1";
const S_MASTER: &str = "5c64a07cd6c0f21b753bf261ef059c7e7633c50a";
const S_208: &str = "208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e";

/// What the relay would have stored before each product's fixtures were sent.
fn seeded(cloud: bool) -> Vec<Environment> {
    if cloud {
        vec![
            branch_env("master", "master", St::Active, Some(hash(C_MASTER))),
            branch_env("develop", "develop", St::Inactive, Some(hash(C_141))),
            with_target(
                pr_env(
                    1,
                    "develop",
                    "master",
                    hash("507a576e59b3"),
                    St::Active,
                    PrState::Open,
                    Some(1_530_568_299_532),
                ),
                C_MASTER,
            ),
            with_target(
                pr_env(
                    2,
                    "develop",
                    "master",
                    hash("6ca9fe26898a"),
                    St::Active,
                    PrState::Open,
                    Some(1_530_582_240_029),
                ),
                C_MASTER,
            ),
        ]
    } else {
        vec![
            branch_env("master", "master", St::Active, Some(hash(S_MASTER))),
            branch_env("develop", "develop", St::Inactive, Some(hash(S_208))),
            with_target(
                pr_env(
                    2,
                    "develop",
                    "master",
                    hash(S_208),
                    St::Active,
                    PrState::Open,
                    Some(1_530_818_490_848),
                ),
                S_MASTER,
            ),
            with_target(
                pr_env(
                    3,
                    "develop",
                    "master",
                    hash("b9eaed50a03c073b20dfa82e5e753d295e7f0e56"),
                    St::Active,
                    PrState::Open,
                    Some(1_530_819_194_430),
                ),
                S_MASTER,
            ),
        ]
    }
}

fn expected(fixture: &str, s: &Settings, seeded: bool) -> Outcome {
    let prs = s.build_pull_requests;
    let fetch = s.fetch_branches;
    let prune = s.effective_prune_branches();
    let post_merge = prs && s.build_pull_requests_post_merge;
    let file = fixture.rsplit('/').next().unwrap();
    let cloud = fixture.starts_with("bitbucket-cloud");
    let (pr_open_id, master_prs): (&str, &[&str]) = if cloud {
        ("pr-1", &["pr-1", "pr-2"])
    } else {
        ("pr-2", &["pr-2", "pr-3"])
    };
    let closes = |pr: &'static str| Outcome {
        creates: names(&[pr], prs && !seeded),
        deletes: names(&[pr], prs && seeded),
        ..Outcome::default()
    };
    let opens = |pr: &'static str, rebuild_when_seeded: bool| Outcome {
        creates: names(&[pr], prs && !seeded),
        builds: names(&[pr], prs && (!seeded || rebuild_when_seeded)),
        ..Outcome::default()
    };
    match file {
        "pr_comment_created.json" | "pr_comment_deleted.json" | "pr_modified_meta.json" => {
            Outcome::default()
        }
        "push_tag_create.json" | "push_tag_delete.json" => Outcome::default(),
        "pr_created.json" => opens("pr-1", false),
        "pr_updated.json" => opens("pr-1", true),
        "pr_fulfilled.json" => closes("pr-1"),
        "pr_declined.json" if cloud => closes("pr-2"),
        "pr_declined.json" | "pr_declined_iso_dates.json" | "pr_deleted.json" => closes("pr-2"),
        "pr_merged.json" | "pr_merged_iso_dates.json" => closes("pr-3"),
        "pr_from_ref_updated.json" | "pr_modified_toref.json" => opens("pr-2", true),
        // pr_open replays the seeded state exactly; the ISO variant is older than it.
        "pr_open.json" | "pr_open_iso_dates.json" => opens(pr_open_id, false),
        "push.json" => Outcome {
            creates: names(&["master"], !seeded),
            deploys: names(&["master"], true),
            builds: names(master_prs, seeded && post_merge),
            ..Outcome::default()
        },
        "push_branch_create.json" => Outcome {
            creates: names(&["develop"], fetch && !seeded),
            ..Outcome::default()
        },
        "push_branch_delete.json" => Outcome {
            deletes: names(&["develop"], prune && seeded),
            ..Outcome::default()
        },
        "push_v5.json" => Outcome {
            creates: names(
                &[&preferred_name("trangineni/devtfvars-1685475548410")],
                fetch,
            ),
            ..Outcome::default()
        },
        other => panic!("no expectation for {other}"),
    }
}

/// Rules that hold for any plan, whatever the event.
fn check_invariants(
    ctx: &str,
    s: &Settings,
    before: &[Environment],
    plan: &Plan,
    after: &[Environment],
) {
    for c in &plan.changes {
        let name = c.environment_name();
        let was = before.iter().find(|e| e.name == name);
        match c {
            EnvironmentChange::Create { environment: e } => {
                assert!(is_valid_name(&e.name), "{ctx}: bad name {}", e.name);
                assert!(
                    !matches!(was, Some(w) if w.is_alive()),
                    "{ctx}: created over a live {name}"
                );
                match e.kind {
                    EnvironmentKind::Branch => {
                        assert!(s.fetch_branches, "{ctx}: branch env without fetch");
                        assert_eq!(e.status, St::Inactive, "{ctx}");
                    }
                    EnvironmentKind::Production => assert_eq!(e.status, St::Active, "{ctx}"),
                    EnvironmentKind::PullRequest => {
                        assert!(s.build_pull_requests, "{ctx}: PR env with PRs off");
                        assert!(matches!(e.status, St::Active | St::Deleted), "{ctx}");
                    }
                }
            }
            EnvironmentChange::Delete { .. } => {
                let was = was.unwrap();
                assert_ne!(
                    was.kind,
                    EnvironmentKind::Production,
                    "{ctx}: production deleted"
                );
                if was.kind == EnvironmentKind::Branch {
                    assert!(s.effective_prune_branches(), "{ctx}: pruned without prune");
                } else {
                    assert!(s.build_pull_requests, "{ctx}");
                }
            }
            _ => {}
        }
    }
    for j in &plan.jobs {
        if let JobSpec::BuildPullRequest { post_merge, .. } = j {
            assert!(s.build_pull_requests, "{ctx}");
            assert_eq!(*post_merge, s.build_pull_requests_post_merge, "{ctx}");
        }
    }
    assert!(
        find_conflicts(after).is_empty(),
        "{ctx}: {:?}",
        find_conflicts(after)
    );
}

#[test]
fn every_fixture_over_the_option_matrix() {
    let mut checked = 0;
    for f in all_fixtures() {
        let event = relay_core::parse(&f.event_key, &f.body).unwrap();
        let cloud = f.name.starts_with("bitbucket-cloud");
        for s in option_matrix() {
            for is_seeded in [false, true] {
                let before = if is_seeded { seeded(cloud) } else { vec![] };
                let ctx = format!(
                    "{} fetch={} prune={} prs={} post_merge={} seeded={is_seeded}",
                    f.name,
                    s.fetch_branches,
                    s.prune_branches,
                    s.build_pull_requests,
                    s.build_pull_requests_post_merge
                );
                let (plan, after) = step(&s, &before, &event);
                assert_eq!(
                    Outcome::of(&plan),
                    expected(&f.name, &s, is_seeded),
                    "{ctx}\n{plan:#?}"
                );
                check_invariants(&ctx, &s, &before, &plan, &after);
                if matches!(event, Event::Ignored { .. }) {
                    assert!(plan.is_empty(), "{ctx}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, all_fixtures().len() * 32);
}

#[test]
fn fixtures_in_sequence_reach_a_consistent_state() {
    // Each product's fixtures in the order they happened; replays and late events included.
    for s in option_matrix() {
        for (dir, order) in [
            (
                "bitbucket-cloud",
                &[
                    "push_branch_create",
                    "pr_created",
                    "pr_updated",
                    "push",
                    "pr_fulfilled",
                    "pr_updated",
                    "pr_created",
                    "push_branch_delete",
                    "push_branch_create",
                ][..],
            ),
            (
                "bitbucket-server",
                &[
                    "push_branch_create",
                    "pr_open",
                    "push",
                    "pr_declined",
                    "pr_open_iso_dates",
                    "pr_declined",
                    "push_branch_delete",
                    "pr_merged",
                ][..],
            ),
        ] {
            let mut state = Vec::new();
            for name in order {
                let event = fixture_event(&format!("{dir}/{name}.json"));
                let before = state.clone();
                let (plan, after) = step(&s, &state, &event);
                check_invariants(&format!("{dir}/{name}"), &s, &before, &plan, &after);
                state = after;
            }
            // Closed pull requests stay closed.
            for e in state
                .iter()
                .filter(|e| e.kind == EnvironmentKind::PullRequest)
            {
                assert!(!e.is_alive(), "{dir}: {e:?}");
            }
        }
    }
}
