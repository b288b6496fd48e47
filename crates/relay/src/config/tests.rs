//! Loading the configuration: defaults, file, environment, and the errors that name the
//! variable.

use std::collections::HashMap;
use std::io::Write;

use secrecy::ExposeSecret;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn defaults() {
    let config = Config::load_from(None, env(&[])).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(
        config.bitbucket_cloud_url.as_str(),
        "https://bitbucket.org/"
    );
    assert_eq!(config.public_base_url(), "http://127.0.0.1:8080");
    assert!(config.database_url.is_none());
    assert_eq!(config.environment_sweep, Duration::from_secs(60));
    let config = Config::load_from(None, env(&[("RELAY_ENVIRONMENT_SWEEP_SECS", "5")])).unwrap();
    assert_eq!(config.environment_sweep, Duration::from_secs(5));
}

#[test]
fn two_overlapping_ingest_writers_unless_told_otherwise() {
    let config = Config::load_from(None, env(&[])).unwrap();
    assert_eq!(config.ingest_writers, 2);
    assert_eq!(config.ingest_overlap_rows, DEFAULT_INGEST_OVERLAP_ROWS);
    let config = Config::load_from(
        None,
        env(&[
            ("RELAY_INGEST_WRITERS", "3"),
            ("RELAY_INGEST_OVERLAP_ROWS", "40"),
        ]),
    )
    .unwrap();
    assert_eq!((config.ingest_writers, config.ingest_overlap_rows), (3, 40));
    // Out of range is brought into range: one delivery at least, a statement's worth at most.
    let config = Config::load_from(None, env(&[("RELAY_INGEST_OVERLAP_ROWS", "0")])).unwrap();
    assert_eq!(config.ingest_overlap_rows, 1);
    let config = Config::load_from(None, env(&[("RELAY_INGEST_OVERLAP_ROWS", "100000")])).unwrap();
    assert_eq!(config.ingest_overlap_rows, MAX_INGEST_BATCH);
    assert!(Config::load_from(None, env(&[("RELAY_INGEST_OVERLAP_ROWS", "many")])).is_err());
}

#[test]
fn environment_overrides_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "listen = \"0.0.0.0:9000\"\npublic_url = \"https://relay.example.com/\"\nlog_format = \"json\"\nsecret_key = \"from-file\""
    )
    .unwrap();
    let config = Config::load_from(
        Some(file.path()),
        env(&[
            ("RELAY_LISTEN", "127.0.0.1:9100"),
            ("DATABASE_URL", "postgres://x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(config.public_base_url(), "https://relay.example.com");
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.secret_key.unwrap().expose_secret(), "from-file");
}

#[test]
fn bad_values_name_the_variable() {
    for (name, value) in [
        ("RELAY_LISTEN", "nowhere"),
        ("RELAY_LOG_FORMAT", "xml"),
        ("RELAY_MAX_BODY_BYTES", "lots"),
        ("RELAY_PUBLIC_URL", "ftp://x"),
    ] {
        let err = Config::load_from(None, env(&[(name, value)])).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "no_such_key = 1").unwrap();
    let err = Config::load_from(Some(file.path()), env(&[])).unwrap_err();
    assert!(err.to_string().contains("no_such_key"), "{err}");
}

#[test]
fn the_example_file_in_deploy_is_valid() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/relay.example.toml"
    ));
    let config = Config::load_from(Some(path), env(&[])).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!((config.workers, config.job_workers), (2, 4));
}

#[test]
fn argocd_settings() {
    let config = Config::load_from(
        None,
        env(&[
            ("RELAY_ARGOCD_PLUGIN_TOKEN", "plugin-token"),
            (
                "RELAY_ARGOCD_APPLICATIONSETS",
                " argocd/previews, team-a/web.previews ,argocd/previews,",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.argocd_plugin_token.unwrap().expose_secret(),
        "plugin-token"
    );
    let sets: Vec<String> = config
        .argocd_application_sets
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(sets, ["argocd/previews", "team-a/web.previews"]);
    let unset = Config::load_from(None, env(&[])).unwrap();
    assert!(unset.argocd_plugin_token.is_none());
    assert!(unset.argocd_application_sets.is_empty());
    for bad in [
        "previews",
        "Argo/previews",
        "argocd/",
        "/x",
        "a/b/c",
        "argocd/Previews",
    ] {
        let err =
            Config::load_from(None, env(&[("RELAY_ARGOCD_APPLICATIONSETS", bad)])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("RELAY_ARGOCD_APPLICATIONSETS"), "{text}");
        assert!(
            text.contains(bad.split('/').next().unwrap_or(bad)),
            "{text}"
        );
    }
}

#[test]
fn durations_and_hardening_settings() {
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    assert!(parse_duration("1w").is_err() && parse_duration("h").is_err());
    let config = Config::load_from(None, env(&[])).unwrap();
    assert_eq!(config.circuit_failures, 5);
    assert_eq!(config.circuit_probe, Duration::from_secs(30));
    assert_eq!(config.activity_retention, Duration::from_secs(30 * 86400));
    assert!(config.max_connections >= 16 && config.max_connections <= 1024);
    assert!(config.metrics_token.is_none());
    let config = Config::load_from(
        None,
        env(&[
            ("RELAY_MAX_CONNECTIONS", "7"),
            ("RELAY_ACTIVITY_RETENTION", "2d"),
            ("RELAY_METRICS_TOKEN", "m"),
        ]),
    )
    .unwrap();
    assert_eq!(config.max_connections, 7);
    assert_eq!(config.activity_retention, Duration::from_secs(2 * 86400));
    let err = Config::load_from(None, env(&[("RELAY_ACTIVITY_RETENTION", "soon")]));
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("RELAY_ACTIVITY_RETENTION"));
}

#[test]
fn debug_does_not_print_secrets() {
    let config = Config::load_from(
        None,
        env(&[
            ("RELAY_SECRET_KEY", "super-secret-key"),
            ("RELAY_ADMIN_TOKEN", "admin-token-value"),
            ("DATABASE_URL", "postgres://u:dbpassword@h/db"),
            ("RELAY_ARGOCD_PLUGIN_TOKEN", "plugin-token-value"),
        ]),
    )
    .unwrap();
    let printed = format!("{config:?}");
    for secret in [
        "super-secret-key",
        "admin-token-value",
        "dbpassword",
        "plugin-token-value",
    ] {
        assert!(!printed.contains(secret), "{printed}");
    }
}

#[test]
fn batch_interval_defaults_and_is_bounded() {
    let config = Config::load_from(None, env(&[])).unwrap();
    assert_eq!(config.batch_interval, DEFAULT_BATCH_INTERVAL);
    let config = Config::load_from(None, env(&[("RELAY_BATCH_INTERVAL_MS", "0")])).unwrap();
    assert_eq!(config.batch_interval, Duration::ZERO);
    let config = Config::load_from(None, env(&[("RELAY_BATCH_INTERVAL_MS", "120")])).unwrap();
    assert_eq!(config.batch_interval, Duration::from_millis(120));
    let config = Config::load_from(None, env(&[("RELAY_BATCH_INTERVAL_MS", "600000")])).unwrap();
    assert_eq!(
        config.batch_interval,
        Duration::from_millis(MAX_BATCH_INTERVAL_MS)
    );
    assert!(Config::load_from(None, env(&[("RELAY_BATCH_INTERVAL_MS", "soon")])).is_err());
}
