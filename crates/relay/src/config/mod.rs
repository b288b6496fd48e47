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

use crate::worker::processor::DEFAULT_BATCH_INTERVAL;

mod argocd;
pub use argocd::{parse_application_sets, ApplicationSetRef};

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
    /// Under load, the least time between two claims of one integration's deliveries
    /// (`relay::worker::processor::DEFAULT_BATCH_INTERVAL`); zero claims again at once.
    pub batch_interval: Duration,
    /// Concurrent group-commit writers of webhook ingest (`DEFAULT_INGEST_WRITERS` says what
    /// was measured).
    pub ingest_writers: usize,
    /// Deliveries an ingest writer gathers before starting a statement while another writer's
    /// is in flight (`DEFAULT_INGEST_OVERLAP_ROWS`).
    pub ingest_overlap_rows: usize,
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
    /// Bearer token Argo CD's ApplicationSet controller sends to the plugin generator
    /// endpoint; the endpoint is off while unset. Never the admin token.
    pub argocd_plugin_token: Option<SecretString>,
    /// ApplicationSets to refresh when the generator's output changes; empty: no refreshes.
    pub argocd_application_sets: Vec<ApplicationSetRef>,
    /// `KUBECONFIG` as given (paths separated by `:`); unset: in-cluster service account,
    /// else `~/.kube/config`.
    pub kubeconfig: Option<String>,
    /// Open HTTP connections at most; beyond, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// When set, `/metrics` asks for `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// Consecutive failures of a deploy hook or Bitbucket API that open its circuit.
    pub circuit_failures: u32,
    /// First wait between probes of an open circuit (doubling, at most 10 minutes).
    pub circuit_probe: Duration,
    /// How long the activity log keeps an entry.
    pub activity_retention: Duration,
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
    batch_interval_ms: Option<u64>,
    ingest_writers: Option<u64>,
    ingest_overlap_rows: Option<u64>,
    job_workers: Option<u64>,
    job_timeout_secs: Option<u64>,
    resync_interval_secs: Option<u64>,
    environment_sweep_secs: Option<u64>,
    bitbucket_cloud_url: Option<String>,
    bitbucket_cloud_api_url: Option<String>,
    argocd_plugin_token: Option<String>,
    argocd_applicationsets: Option<String>,
    max_connections: Option<u64>,
    metrics_token: Option<String>,
    circuit_failures: Option<u64>,
    circuit_probe_secs: Option<u64>,
    activity_retention: Option<String>,
}

/// A longer interval would hold a busy integration's deliveries back for longer than it
/// saves; this bound keeps a typo from holding them for minutes.
pub const MAX_BATCH_INTERVAL_MS: u64 = 1_000;

/// Bitbucket Cloud caps webhook bodies at 256 KB; Server has no documented cap, so the default
/// leaves room while still refusing anything absurd.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Two group-commit writers, the second starting a statement while the first's is in flight
/// only once `DEFAULT_INGEST_OVERLAP_ROWS` deliveries are queued: the statements overlap
/// (one in PostgreSQL's hands while the other waits for its WAL flush) and stay big, since
/// PostgreSQL's cost per row falls with the statement's size. Two writers that each took
/// whatever was queued made statements half as big and lost to one writer; see
/// `DEFAULT_INGEST_OVERLAP_ROWS` for what was measured. `RELAY_INGEST_WRITERS` sets it.
pub const DEFAULT_INGEST_WRITERS: usize = 2;
/// Most deliveries in one ingest statement.
pub const MAX_INGEST_BATCH: usize = 256;
/// relay-bench at 64 senders (fifteenth session, alternating single runs, medians against
/// one writer): ingest alone 1.94x the INSERT baseline against 1.62x, ingest + processing
/// 1.28x against 1.17x; 12 and 24 rows did no better, two writers with no gathering 1.54x and
/// 1.01x. Statements hold ~20 deliveries against ~31 with one writer, and overlap.
pub const DEFAULT_INGEST_OVERLAP_ROWS: usize = 16;

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
        let file = read_file(file, &env)?;
        let extra = Extra::load(&env, &file)?;
        let pick =
            |var: &str, from_file: Option<String>| env(var).filter(|v| !v.is_empty()).or(from_file);
        let number = |name: &'static str, from_file: Option<u64>, default: u64| {
            parse_number(name, env(name), from_file, default)
        };
        let url = |name: &'static str, raw: Option<String>| -> Result<Option<Url>, ConfigError> {
            raw.map(|raw| parse_http_url(name, &raw)).transpose()
        };
        let listen = parse_listen(pick("RELAY_LISTEN", file.listen.clone()))?;
        let log_format = parse_log_format(pick("RELAY_LOG_FORMAT", file.log_format.clone()))?;
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
            batch_interval: Duration::from_millis(
                number(
                    "RELAY_BATCH_INTERVAL_MS",
                    file.batch_interval_ms,
                    DEFAULT_BATCH_INTERVAL.as_millis() as u64,
                )?
                .min(MAX_BATCH_INTERVAL_MS),
            ),
            ingest_writers: usize::try_from(
                number(
                    "RELAY_INGEST_WRITERS",
                    file.ingest_writers,
                    DEFAULT_INGEST_WRITERS as u64,
                )?
                .max(1),
            )
            .unwrap_or(1),
            ingest_overlap_rows: usize::try_from(
                number(
                    "RELAY_INGEST_OVERLAP_ROWS",
                    file.ingest_overlap_rows,
                    DEFAULT_INGEST_OVERLAP_ROWS as u64,
                )?
                .clamp(1, MAX_INGEST_BATCH as u64),
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
            bitbucket_cloud_url: extra.bitbucket_cloud_url,
            bitbucket_cloud_api_url: extra.bitbucket_cloud_api_url,
            argocd_plugin_token: extra.argocd_plugin_token,
            argocd_application_sets: extra.argocd_application_sets,
            kubeconfig: extra.kubeconfig,
            max_connections: extra.max_connections,
            metrics_token: extra.metrics_token,
            circuit_failures: extra.circuit_failures,
            circuit_probe: extra.circuit_probe,
            activity_retention: extra.activity_retention,
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

/// The settings added with the connection cap, the metrics token, circuit breakers and the
/// activity log, read apart so `load_from` stays readable.
struct Extra {
    max_connections: usize,
    metrics_token: Option<SecretString>,
    circuit_failures: u32,
    circuit_probe: Duration,
    activity_retention: Duration,
    bitbucket_cloud_url: Url,
    bitbucket_cloud_api_url: Url,
    argocd_plugin_token: Option<SecretString>,
    argocd_application_sets: Vec<ApplicationSetRef>,
    kubeconfig: Option<String>,
}

impl Extra {
    fn load(env: &impl Fn(&str) -> Option<String>, file: &FileConfig) -> Result<Self, ConfigError> {
        let given = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, from_file: Option<u64>| {
            parse_optional_number(name, given(name), from_file)
        };
        let max_connections = match number("RELAY_MAX_CONNECTIONS", file.max_connections)? {
            Some(n) => usize::try_from(n.max(1)).unwrap_or(usize::MAX),
            None => crate::http::server::default_max_connections(),
        };
        let retention = given("RELAY_ACTIVITY_RETENTION").or(file.activity_retention.clone());
        let activity_retention = match retention {
            Some(raw) => parse_duration(&raw).map_err(|message| ConfigError::Invalid {
                name: "RELAY_ACTIVITY_RETENTION",
                message,
            })?,
            None => Duration::from_secs(30 * 24 * 3600),
        };
        Ok(Self {
            max_connections,
            metrics_token: given("RELAY_METRICS_TOKEN")
                .or(file.metrics_token.clone())
                .map(SecretString::from),
            circuit_failures: u32::try_from(
                number("RELAY_CIRCUIT_FAILURES", file.circuit_failures)?
                    .unwrap_or(5)
                    .max(1),
            )
            .unwrap_or(u32::MAX),
            circuit_probe: Duration::from_secs(
                number("RELAY_CIRCUIT_PROBE_SECS", file.circuit_probe_secs)?
                    .unwrap_or(30)
                    .max(1),
            ),
            activity_retention: activity_retention.max(Duration::from_secs(3600)),
            bitbucket_cloud_url: cloud_url(
                "RELAY_BITBUCKET_CLOUD_URL",
                given("RELAY_BITBUCKET_CLOUD_URL").or(file.bitbucket_cloud_url.clone()),
                "https://bitbucket.org",
            )?,
            bitbucket_cloud_api_url: cloud_url(
                "RELAY_BITBUCKET_CLOUD_API_URL",
                given("RELAY_BITBUCKET_CLOUD_API_URL").or(file.bitbucket_cloud_api_url.clone()),
                "https://api.bitbucket.org",
            )?,
            argocd_plugin_token: given("RELAY_ARGOCD_PLUGIN_TOKEN")
                .or(file.argocd_plugin_token.clone())
                .map(SecretString::from),
            argocd_application_sets: parse_application_sets(
                &given("RELAY_ARGOCD_APPLICATIONSETS")
                    .or(file.argocd_applicationsets.clone())
                    .unwrap_or_default(),
            )?,
            kubeconfig: given("KUBECONFIG"),
        })
    }
}

fn cloud_url(name: &'static str, raw: Option<String>, default: &str) -> Result<Url, ConfigError> {
    parse_http_url(name, raw.as_deref().unwrap_or(default))
}

/// The optional TOML file (`--config`, else `RELAY_CONFIG`); none given is all defaults.
fn read_file(
    file: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<FileConfig, ConfigError> {
    let file_path = file
        .map(Path::to_path_buf)
        .or_else(|| env("RELAY_CONFIG").map(PathBuf::from));
    let Some(path) = file_path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
        path,
        message: e.message().to_owned(),
    })
}

fn parse_number(
    name: &'static str,
    given: Option<String>,
    from_file: Option<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    Ok(parse_optional_number(name, given, from_file)?.unwrap_or(default))
}

/// A whole number from the environment, else the file's; `None` when neither gives one.
fn parse_optional_number(
    name: &'static str,
    given: Option<String>,
    from_file: Option<u64>,
) -> Result<Option<u64>, ConfigError> {
    match given.filter(|v| !v.is_empty()) {
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                name,
                message: format!("{raw:?} is not a whole number"),
            }),
        None => Ok(from_file),
    }
}

fn parse_listen(raw: Option<String>) -> Result<SocketAddr, ConfigError> {
    let raw = raw.unwrap_or_else(|| "127.0.0.1:8080".into());
    raw.parse().map_err(|_| ConfigError::Invalid {
        name: "RELAY_LISTEN",
        message: format!("{raw:?} is not an address like 0.0.0.0:8080"),
    })
}

fn parse_log_format(raw: Option<String>) -> Result<LogFormat, ConfigError> {
    match raw.as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError::Invalid {
            name: "RELAY_LOG_FORMAT",
            message: format!("{other:?} is neither \"text\" nor \"json\""),
        }),
    }
}

/// A duration such as `24h`, `30d`, `90m` or `45s`; a bare number is seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let bad = || format!("{raw:?} is not a duration like 45s, 90m, 24h or 30d");
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(bad()),
    };
    amount
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(bad)
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
mod tests;
