//! deploy/monitoring/: every metric the alert rules and the Grafana dashboard name is one
//! the relay exports on /metrics, with the suffix its type gives it; the dashboard's queries
//! parse (through promtool, when it is installed: scripts/test.sh installs it).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use sqlx::PgPool;

use crate::support::*;

fn monitoring(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/monitoring")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `relay_...` identifier in `text` (metric names are the only ones of that form in
/// these files: alert names, labels and prose never use it).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut i = 0;
    while let Some(found) = text[i..].find("relay_") {
        let start = i + found;
        let mut end = start + "relay_".len();
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        let preceded =
            start > 0 && (ident(bytes[start - 1]) || bytes[start - 1].is_ascii_uppercase());
        if !preceded {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// `# TYPE name kind` of the exposition.
fn exported(metrics: &str) -> HashMap<String, String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

fn is_exported(name: &str, types: &HashMap<String, String>) -> bool {
    let kind_of = |base: &str| types.get(base).map(String::as_str);
    match kind_of(name) {
        Some("gauge") => return true,
        Some(_) => return false, // a counter or histogram is never queried by its bare name
        None => {}
    }
    let suffixed = |suffix: &str, kind: &str| {
        name.strip_suffix(suffix)
            .is_some_and(|base| kind_of(base) == Some(kind))
    };
    suffixed("_total", "counter")
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| suffixed(s, "histogram"))
}

#[sqlx::test(migrations = "../../migrations")]
async fn alerts_and_dashboard_name_only_exported_metrics(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let types = exported(&metrics);
    assert!(types.len() > 10, "{metrics}");
    let alerts = monitoring("alerts.yaml");
    let dashboard = monitoring("grafana-dashboard.json");
    let dashboard_json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    for (file, text, at_least) in [
        ("alerts.yaml", &alerts, 6),
        ("grafana-dashboard.json", &dashboard, 12),
    ] {
        let names = metric_names(text);
        assert!(names.len() >= at_least, "{file}: {names:?}");
        let missing: Vec<&String> = names.iter().filter(|n| !is_exported(n, &types)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics /metrics does not export: {missing:?}\nexported: {types:?}"
        );
    }
    // The dashboard covers what the issue asks of it.
    for wanted in [
        "relay_webhook_deliveries_total",
        "relay_webhook_ingest_duration_seconds_bucket",
        "relay_delivery_queue_depth",
        "relay_delivery_queue_oldest_seconds",
        "relay_delivery_processing_lag_seconds_bucket",
        "relay_jobs_total",
        "relay_environments",
    ] {
        assert!(metric_names(&dashboard).contains(wanted), "{wanted}");
    }
    check_dashboard_queries(&dashboard_json);
}

/// Runs each dashboard query through `promtool check rules` as a recording rule.
fn check_dashboard_queries(dashboard: &serde_json::Value) {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut count = 0;
    for target in panels
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
    {
        let expr = target["expr"]
            .as_str()
            .unwrap()
            .replace("$__rate_interval", "5m");
        count += 1;
        rules.push_str(&format!(
            "      - record: dashboard:query_{count}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    assert!(count >= 12);
    let Ok(status) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!(
            "promtool is not installed: dashboard queries not parsed (scripts/test.sh installs it)"
        );
        return;
    };
    assert!(status.status.success());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), rules).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn names_are_found_in_expressions() {
    let names = metric_names(
        r#"sum(rate(relay_jobs_total{kind="x"}[5m])) / max(relay_ready) RELAY_ARGOCD_X relay-plugin"#,
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["relay_jobs_total", "relay_ready"]);
}
