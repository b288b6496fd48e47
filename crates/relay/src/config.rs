//! One typed configuration, loaded and validated once in `main`.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file (`--config` or
//! `RELAY_CONFIG`), then environment variables. Secrets are kept in [`SecretString`] so a
//! `Debug` print of the configuration cannot leak them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("{0} is not set")]
    Missing(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Option<SecretString>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<Url>,
    pub admin_token: Option<SecretString>,
    pub secret_key: Option<SecretString>,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    /// A request that has not been answered in this time (a sender trickling its body in) is cut off.
    pub request_timeout: Duration,
    /// Delivery processors in this process; 0 makes an ingest-only replica.
    pub workers: usize,
    /// Concurrent group-commit writers of webhook ingest. Measured with relay-bench: one
    /// writer (larger transactions) beat two, two beat four; while it commits, the next
    /// batch gathers.
    pub ingest_writers: usize,
    /// Job runners in this process (git, deploy hooks, build statuses); 0 disables them.
    pub job_workers: usize,
    /// Longest a single job (a fetch, a push) may take.
    pub job_timeout: Duration,
    /// How often every integration is reconciled against Bitbucket's API.
    pub resync_interval: Duration,
    /// How often idle environments are looked for (`environment_idle_ttl`).
    pub environment_sweep: Duration,
    pub bitbucket_cloud_url: Url,
    pub bitbucket_cloud_api_url: Url,
}

/// The file's shape: every key optional, named like the environment variables without the
/// `RELAY_` prefix, in lowercase.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    admin_token: Option<String>,
    secret_key: Option<String>,
    log_format: Option<String>,
    max_body_bytes: Option<u64>,
    db_max_connections: Option<u32>,
    db_acquire_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    workers: Option<u64>,
    ingest_writers: Option<u64>,
    job_workers: Option<u64>,
    job_timeout_secs: Option<u64>,
    resync_interval_secs: Option<u64>,
    environment_sweep_secs: Option<u64>,
    bitbucket_cloud_url: Option<String>,
    bitbucket_cloud_api_url: Option<String>,
}

/// Bitbucket Cloud caps webhook bodies at 256 KB; Server has no documented cap, so the default
/// leaves room while still refusing anything absurd.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl Config {
    /// Loads from the process environment and the optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Loads with an injectable environment, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_path = file
            .map(Path::to_path_buf)
            .or_else(|| env("RELAY_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.message().to_owned(),
                })?
            }
            None => FileConfig::default(),
        };
        let pick =
            |var: &str, from_file: Option<String>| env(var).filter(|v| !v.is_empty()).or(from_file);
        let number = |name: &'static str, from_file: Option<u64>, default: u64| match env(name)
            .filter(|v| !v.is_empty())
        {
            Some(raw) => raw.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                name,
                message: format!("{raw:?} is not a whole number"),
            }),
            None => Ok(from_file.unwrap_or(default)),
        };
        let url = |name: &'static str, raw: Option<String>| -> Result<Option<Url>, ConfigError> {
            raw.map(|raw| parse_http_url(name, &raw)).transpose()
        };

        let listen_raw =
            pick("RELAY_LISTEN", file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_raw.parse().map_err(|_| ConfigError::Invalid {
            name: "RELAY_LISTEN",
            message: format!("{listen_raw:?} is not an address like 0.0.0.0:8080"),
        })?;
        let log_format = match pick("RELAY_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "RELAY_LOG_FORMAT",
                    message: format!("{other:?} is neither \"text\" nor \"json\""),
                })
            }
        };
        let max_body_bytes = number(
            "RELAY_MAX_BODY_BYTES",
            file.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES as u64,
        )?;
        let db_max_connections = number(
            "RELAY_DB_MAX_CONNECTIONS",
            file.db_max_connections.map(u64::from),
            16,
        )?;
        Ok(Self {
            database_url: pick("DATABASE_URL", file.database_url).map(SecretString::from),
            listen,
            data_dir: pick(
                "RELAY_DATA_DIR",
                file.data_dir.map(|p| p.to_string_lossy().into_owned()),
            )
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data")),
            public_url: url(
                "RELAY_PUBLIC_URL",
                pick("RELAY_PUBLIC_URL", file.public_url),
            )?,
            admin_token: pick("RELAY_ADMIN_TOKEN", file.admin_token).map(SecretString::from),
            secret_key: pick("RELAY_SECRET_KEY", file.secret_key).map(SecretString::from),
            log_format,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            db_max_connections: u32::try_from(db_max_connections).unwrap_or(u32::MAX).max(1),
            db_acquire_timeout: Duration::from_secs(
                number(
                    "RELAY_DB_ACQUIRE_TIMEOUT_SECS",
                    file.db_acquire_timeout_secs,
                    3,
                )?
                .max(1),
            ),
            request_timeout: Duration::from_secs(
                number("RELAY_REQUEST_TIMEOUT_SECS", file.request_timeout_secs, 10)?.max(1),
            ),
            workers: usize::try_from(number("RELAY_WORKERS", file.workers, 2)?)
                .unwrap_or(usize::MAX),
            ingest_writers: usize::try_from(
                number("RELAY_INGEST_WRITERS", file.ingest_writers, 1)?.max(1),
            )
            .unwrap_or(1),
            job_workers: usize::try_from(number("RELAY_JOB_WORKERS", file.job_workers, 4)?)
                .unwrap_or(usize::MAX),
            job_timeout: Duration::from_secs(
                number("RELAY_JOB_TIMEOUT_SECS", file.job_timeout_secs, 300)?.max(1),
            ),
            resync_interval: Duration::from_secs(
                number("RELAY_RESYNC_INTERVAL", file.resync_interval_secs, 300)?.max(10),
            ),
            environment_sweep: Duration::from_secs(
                number(
                    "RELAY_ENVIRONMENT_SWEEP_SECS",
                    file.environment_sweep_secs,
                    60,
                )?
                .max(1),
            ),
            bitbucket_cloud_url: url(
                "RELAY_BITBUCKET_CLOUD_URL",
                Some(
                    pick("RELAY_BITBUCKET_CLOUD_URL", file.bitbucket_cloud_url)
                        .unwrap_or_else(|| "https://bitbucket.org".into()),
                ),
            )?
            .ok_or(ConfigError::Missing("RELAY_BITBUCKET_CLOUD_URL"))?,
            bitbucket_cloud_api_url: url(
                "RELAY_BITBUCKET_CLOUD_API_URL",
                Some(
                    pick(
                        "RELAY_BITBUCKET_CLOUD_API_URL",
                        file.bitbucket_cloud_api_url,
                    )
                    .unwrap_or_else(|| "https://api.bitbucket.org".into()),
                ),
            )?
            .ok_or(ConfigError::Missing("RELAY_BITBUCKET_CLOUD_API_URL"))?,
        })
    }

    /// Where Bitbucket Cloud's web/OAuth and REST API live.
    pub fn cloud_urls(&self) -> crate::bitbucket::CloudUrls {
        crate::bitbucket::CloudUrls {
            web: self.bitbucket_cloud_url.clone(),
            api: self.bitbucket_cloud_api_url.clone(),
        }
    }

    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url
            .as_ref()
            .ok_or(ConfigError::Missing("DATABASE_URL"))
    }

    /// The base every hook URL is built on: `RELAY_PUBLIC_URL`, or the listen address.
    pub fn public_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

pub fn parse_http_url(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
        name,
        message: format!("{raw:?} is not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Invalid {
            name,
            message: format!("{raw:?} must be an http(s) URL with a host"),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
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
        let config =
            Config::load_from(None, env(&[("RELAY_ENVIRONMENT_SWEEP_SECS", "5")])).unwrap();
        assert_eq!(config.environment_sweep, Duration::from_secs(5));
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
    fn debug_does_not_print_secrets() {
        let config = Config::load_from(
            None,
            env(&[
                ("RELAY_SECRET_KEY", "super-secret-key"),
                ("RELAY_ADMIN_TOKEN", "admin-token-value"),
                ("DATABASE_URL", "postgres://u:dbpassword@h/db"),
            ]),
        )
        .unwrap();
        let printed = format!("{config:?}");
        for secret in ["super-secret-key", "admin-token-value", "dbpassword"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
