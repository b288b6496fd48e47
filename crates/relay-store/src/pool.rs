//! Connecting, migrating and checking the schema.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::PgPool;

use crate::StoreError;

/// The migrations in `migrations/` at the workspace root, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before the database counts as unavailable.
    /// Bitbucket gives up after 10 s, so this stays well below.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Creates the pool without waiting for the database: the relay starts, answers `/healthz`
/// and reports not-ready until PostgreSQL is reachable.
pub fn connect(url: &str, options: &PoolOptions) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_lazy_with(connect_options(url)?))
}

/// The options `url` gives, except that a connection over loopback goes without TLS unless
/// a mode was asked for (`sslmode` in the URL or `PGSSLMODE`). Left unsaid, the mode is
/// `prefer`, which promises nothing (it falls back to plain text whenever the server offers
/// no TLS), and on loopback the bytes never leave the machine: rustls was a tenth of
/// relay-bench's samples under ingest (`perf`; the relay and its in-process load generator).
/// `require` and the `verify-*` modes are kept wherever the server is.
///
/// Every connection runs without JIT compilation (`jit = off`). PostgreSQL compiles a
/// statement whose estimated cost passes `jit_above_cost`, and the queue's statements,
/// planned without sequential scans on purpose, are estimated far above what they cost: a
/// claim's probe that ran in 1.5 ms spent 84 ms compiling (measured in relay-bench).
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    options_for(url, std::env::var_os("PGSSLMODE").is_some())
}

fn options_for(url: &str, mode_in_env: bool) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
    if mode_in_env || ssl_mode_in_url(url) || !is_loopback(options.get_host()) {
        return Ok(options);
    }
    Ok(options.ssl_mode(PgSslMode::Disable))
}

fn ssl_mode_in_url(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query.split('&').any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        name.eq_ignore_ascii_case("sslmode") || name.eq_ignore_ascii_case("ssl-mode")
    })
}

/// A loopback address or name, or a Unix socket directory (which never uses TLS anyway).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.starts_with('/')
        || IpAddr::from_str(bare).is_ok_and(|ip| ip.is_loopback())
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// True when every embedded migration has been applied successfully.
pub async fn schema_is_current(pool: &PgPool) -> Result<bool, StoreError> {
    let Some(latest) = MIGRATOR.iter().map(|m| m.version).max() else {
        return Ok(true);
    };
    let exists: Option<bool> =
        sqlx::query_scalar!("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if exists != Some(true) {
        return Ok(false);
    }
    let applied: Option<i64> =
        sqlx::query_scalar!("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    Ok(applied.is_some_and(|v| v >= latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> PgSslMode {
        options_for(url, false).map(|o| o.get_ssl_mode()).unwrap()
    }

    #[test]
    fn loopback_without_a_mode_goes_without_tls() {
        for url in [
            "postgres://relay:relay@127.0.0.1:5432/relay",
            "postgres://relay@localhost/relay",
            "postgres://relay@[::1]:5432/relay",
            "postgres://relay@127.0.0.2/relay?application_name=relay",
        ] {
            assert!(matches!(mode(url), PgSslMode::Disable), "{url}");
        }
    }

    #[test]
    fn an_asked_for_mode_or_another_host_is_kept() {
        let from_env = options_for("postgres://relay@127.0.0.1/relay", true).unwrap();
        assert!(matches!(from_env.get_ssl_mode(), PgSslMode::Prefer));
        assert!(matches!(
            mode("postgres://relay@127.0.0.1/relay?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://relay@localhost/relay?application_name=x&sslmode=prefer"),
            PgSslMode::Prefer
        ));
        assert!(matches!(
            mode("postgres://relay@db.internal:5432/relay"),
            PgSslMode::Prefer
        ));
        assert!(matches!(
            mode("postgres://relay@10.0.0.7/relay"),
            PgSslMode::Prefer
        ));
    }

    #[test]
    fn every_connection_goes_without_jit_and_keeps_the_options_asked_for() {
        for (url, in_env) in [
            ("postgres://relay@127.0.0.1/relay", false),
            (
                "postgres://relay@db.internal/relay?options=-c%20statement_timeout%3D5s",
                true,
            ),
        ] {
            let options = options_for(url, in_env).unwrap();
            let sent = options.get_options().unwrap_or_default();
            assert!(sent.contains("-c jit=off"), "{url}: {sent}");
        }
        let kept = options_for(
            "postgres://relay@db.internal/relay?options=-c%20statement_timeout%3D5s",
            false,
        )
        .unwrap();
        assert!(kept
            .get_options()
            .unwrap_or_default()
            .contains("statement_timeout=5s"));
    }
}
