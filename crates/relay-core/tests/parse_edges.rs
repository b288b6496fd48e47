//! Payload shapes the fixtures do not cover, and typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{all_fixtures, hash};
use proptest::prelude::*;
use relay_core::{parse, Event, ParseError, RefKind};
use serde_json::{json, Value};

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";
const ZERO: &str = "0000000000000000000000000000000000000000";

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn cloud_ref(kind: &str, name: &str, h: &str) -> Value {
    json!({"type": kind, "name": name, "target": {"hash": h}})
}

#[test]
fn cloud_push_handles_every_change_and_truncation() {
    let v = json!({"push": {"changes": [
        {"old": cloud_ref("branch", "a", A), "new": cloud_ref("branch", "a", B), "forced": true, "truncated": true},
        {"old": null, "new": cloud_ref("branch", "b", A)},
        {"old": cloud_ref("tag", "v1", A), "new": null},
    ]}});
    let Event::Push { changes, truncated } = parse("repo:push", &body(&v)).unwrap() else {
        panic!()
    };
    assert!(truncated);
    assert_eq!(changes.len(), 3);
    assert!(changes[0].forced);
    assert_eq!(
        (changes[1].old.clone(), changes[1].new.clone()),
        (None, Some(hash(A)))
    );
    assert_eq!(changes[2].kind, RefKind::Tag);
    assert_eq!(changes[2].new, None);
}

#[test]
fn server_push_variants() {
    let v = json!({"eventKey": "repo:refs_changed", "changes": []});
    assert_eq!(
        parse("repo:refs_changed", &body(&v)).unwrap(),
        Event::Push {
            changes: vec![],
            truncated: false
        }
    );
    // No `ref` object (old versions): name and kind come from refId.
    let v = json!({"changes": [{"refId": "refs/heads/feature/x", "fromHash": ZERO, "toHash": A, "type": "ADD"}]});
    let Event::Push { changes, .. } = parse("repo:refs_changed", &body(&v)).unwrap() else {
        panic!()
    };
    assert_eq!(
        (changes[0].kind, changes[0].name.as_str()),
        (RefKind::Branch, "feature/x")
    );
    assert_eq!(changes[0].old, None);
    // A ref whose full id is authoritative over displayId.
    let v = json!({"changes": [{"ref": {"id": "refs/heads/refs/heads/x", "displayId": "x", "type": "BRANCH"},
        "fromHash": A, "toHash": B, "type": "UPDATE"}]});
    let Event::Push { changes, .. } = parse("repo:refs_changed", &body(&v)).unwrap() else {
        panic!()
    };
    assert_eq!(changes[0].name, "refs/heads/x");
    // Newer versions add commit details; they are tolerated.
    let v = json!({"changes": [{"ref": {"id": "refs/tags/v1", "displayId": "v1", "type": "TAG"},
        "fromHash": A, "toHash": ZERO, "type": "DELETE", "toCommit": {"id": B}}], "commits": []});
    let Event::Push { changes, .. } = parse("repo:refs_changed", &body(&v)).unwrap() else {
        panic!()
    };
    assert_eq!(
        (changes[0].kind, changes[0].new.clone()),
        (RefKind::Tag, None)
    );
}

#[test]
fn typed_errors() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("repo:push", b"not json".to_vec(), "invalid_json"),
        ("repo:push", b"[]".to_vec(), "unexpected_shape"),
        ("repo:push", body(&json!({})), "missing_field"),
        (
            "repo:push",
            body(&json!({"push": {"changes": [{"old": null, "new": null}]}})),
            "missing_field",
        ),
        (
            "repo:push",
            body(&json!({"push": {"changes": [{"new": cloud_ref("bookmark", "a", A)}]}})),
            "invalid_value",
        ),
        (
            "repo:push",
            body(&json!({"push": {"changes": [{"new": cloud_ref("branch", "a", "xyz")}]}})),
            "invalid_value",
        ),
        (
            "repo:refs_changed",
            body(&json!({"eventKey": "repo:refs_changed"})),
            "missing_field",
        ),
        (
            "repo:refs_changed",
            body(
                &json!({"changes": [{"refId": "refs/heads/a", "fromHash": ZERO, "toHash": ZERO}]}),
            ),
            "missing_field",
        ),
        (
            "repo:refs_changed",
            body(&json!({"changes": [{"refId": "refs/heads/a", "toHash": A, "type": "MOVE"}]})),
            "invalid_value",
        ),
        (
            "pr:opened",
            body(&json!({"eventKey": "pr:opened"})),
            "missing_field",
        ),
        (
            "pr:opened",
            body(&json!({"eventKey": "pr:merged", "pullRequest": {}})),
            "event_key_mismatch",
        ),
        (
            "pullrequest:created",
            body(&json!({"pullrequest": {"id": 1, "state": "OPEN"}})),
            "missing_field",
        ),
        (
            "pullrequest:created",
            body(&json!({"pullrequest": {"id": 1, "state": "WEIRD"}})),
            "invalid_value",
        ),
        (
            "pullrequest:created",
            body(&json!({"pullrequest": {"id": -1}})),
            "unexpected_shape",
        ),
        ("nope:nope", b"{}".to_vec(), "unknown_event_key"),
    ];
    for (key, body, label) in cases {
        let err = parse(key, &body).unwrap_err();
        assert_eq!(
            err.label(),
            label,
            "{key} {}: {err}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn cloud_draft_and_deleted_fork() {
    let f = all_fixtures()
        .into_iter()
        .find(|f| f.name == "bitbucket-cloud/pr_created.json")
        .unwrap();
    let mut v: Value = serde_json::from_slice(&f.body).unwrap();
    v["pullrequest"]["draft"] = json!(true);
    v["pullrequest"]["source"]["repository"] = Value::Null;
    let Event::PullRequest { pr, .. } = parse(&f.event_key, &body(&v)).unwrap() else {
        panic!()
    };
    assert!(pr.draft);
    assert!(
        pr.is_fork(),
        "a source repository that no longer exists is not ours"
    );
    v["pullrequest"]["updated_on"] = json!("yesterday");
    assert_eq!(
        parse(&f.event_key, &body(&v)).unwrap_err().label(),
        "invalid_value"
    );
}

#[test]
fn api_listing_objects_use_the_webhook_conversion() {
    let f = all_fixtures()
        .into_iter()
        .find(|f| f.name == "bitbucket-server/pr_open.json")
        .unwrap();
    let v: Value = serde_json::from_slice(&f.body).unwrap();
    let pr = relay_core::event::parse_pull_request_object(
        relay_core::IntegrationType::Server,
        &body(&v["pullRequest"]),
    )
    .unwrap();
    assert_eq!(pr.id, 2);
    assert!(matches!(
        relay_core::event::parse_pull_request_object(relay_core::IntegrationType::Cloud, b"{}"),
        Err(ParseError::MissingField(_))
    ));
}

fn keys() -> Vec<String> {
    let mut k: Vec<String> = all_fixtures().into_iter().map(|f| f.event_key).collect();
    k.extend(
        [
            "diagnostics:ping",
            "pr:reopened",
            "pr:reviewer:needs_work",
            "bogus",
        ]
        .map(String::from),
    );
    k
}

/// Every JSON path in `v`, as a list of object keys / array indexes.
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(json!(k));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(json!(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn replace_at(v: &mut Value, path: &[Value], new: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        if let Some(new) = new {
            *v = new;
        }
        return;
    };
    let mut cur = v;
    for p in parents {
        cur = match p {
            Value::String(k) => &mut cur[k.as_str()],
            Value::Number(i) => &mut cur[i.as_u64().unwrap() as usize],
            _ => unreachable!(),
        };
    }
    match (cur, last, new) {
        (Value::Object(m), Value::String(k), None) => {
            m.remove(k);
        }
        (Value::Object(m), Value::String(k), Some(n)) => {
            m.insert(k.clone(), n);
        }
        (Value::Array(a), Value::Number(i), None) => {
            a.remove(i.as_u64().unwrap() as usize);
        }
        (Value::Array(a), Value::Number(i), Some(n)) => {
            a[i.as_u64().unwrap() as usize] = n;
        }
        _ => {}
    }
}

fn any_json_leaf() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        any::<bool>().prop_map(|b| Some(json!(b))),
        any::<i64>().prop_map(|n| Some(json!(n))),
        any::<f64>().prop_map(|n| Some(json!(n))),
        ".{0,50}".prop_map(|s| Some(json!(s))),
        "[0-9a-fA-F]{0,45}".prop_map(|s| Some(json!(s))),
        Just(Some(json!({}))),
        Just(Some(json!([]))),
        Just(Some(json!("2018-07-05T19:30:48+0000"))),
        Just(Some(json!("refs/heads/x"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(key in prop::sample::select(keys()), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&key, &bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in 0usize..1000,
        picks in prop::collection::vec((any::<prop::sample::Index>(), any_json_leaf()), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
        key in prop::option::of(prop::sample::select(keys())),
    ) {
        let fixtures = all_fixtures();
        let f = &fixtures[index % fixtures.len()];
        let mut v: Value = serde_json::from_slice(&f.body).unwrap();
        for (at, new) in picks {
            let mut all = Vec::new();
            paths(&v, &mut Vec::new(), &mut all);
            let path = at.get(&all).clone();
            replace_at(&mut v, &path, new);
        }
        let mut bytes = body(&v);
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let key = key.unwrap_or_else(|| f.event_key.clone());
        let _ = parse(&key, &bytes);
    }
}
