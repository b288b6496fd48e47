//! Senders, the bare-HTTP baseline and the INSERT baseline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use sqlx::PgPool;

use crate::sender::{self, Prepared, Target};

pub(crate) struct Report {
    pub accepted: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Report {
    pub(crate) fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }
    pub(crate) fn p50_ms(&self) -> f64 {
        self.percentile(0.50)
    }
    pub(crate) fn p99_ms(&self) -> f64 {
        self.percentile(0.99)
    }
}

pub(crate) struct Load {
    url: String,
    secret: String,
    bodies: Vec<(String, Vec<u8>)>,
    concurrency: usize,
    /// Request ids are `{prefix}{n}`: every phase and process its own, so that no request is
    /// answered as a duplicate of an earlier one.
    request_prefix: String,
}

/// Every fixture body with the event key Bitbucket sends it with.
pub(crate) fn fixtures() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    Ok(relay_fixtures::load_all()?
        .into_iter()
        .map(|f| (f.event_key.to_owned(), f.body))
        .collect())
}

impl Load {
    pub(crate) fn new(
        url: String,
        secret: &str,
        bodies: Vec<(String, Vec<u8>)>,
        concurrency: usize,
    ) -> Self {
        Self {
            url,
            secret: secret.to_owned(),
            bodies,
            concurrency,
            request_prefix: "bench-".into(),
        }
    }

    pub(crate) fn with_request_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.request_prefix);
        self
    }

    /// `concurrency` senders, each on a connection of its own sending its next request as
    /// soon as the last is answered.
    pub(crate) async fn run(&self, duration: Duration) -> Report {
        let url = url::Url::parse(&self.url).unwrap();
        let addr = url.socket_addrs(|| None).unwrap()[0];
        let requests: Arc<Vec<Prepared>> = Arc::new(
            self.bodies
                .iter()
                .map(|(key, body)| {
                    (
                        HeaderValue::from_str(key).unwrap(),
                        Bytes::from(body.clone()),
                        HeaderValue::from_str(&relay_core::sign(self.secret.as_bytes(), body))
                            .unwrap(),
                    )
                })
                .collect(),
        );
        HeaderValue::from_str(&format!("{}0", self.request_prefix))
            .expect("the request id prefix makes a valid header value");
        let target = Arc::new(Target {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).unwrap(),
            path: url.path().to_owned(),
            requests,
            prefix: self.request_prefix.clone(),
        });
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = (0..self.concurrency)
            .map(|_| {
                let target = target.clone();
                tokio::spawn(async move { sender::send_until(&target, deadline).await })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            if let Ok((mut l, e)) = task.await {
                latencies.append(&mut l);
                errors += e;
            }
        }
        Report {
            accepted: latencies.len() as u64,
            errors,
            elapsed: started.elapsed(),
            latencies,
        }
    }
}

/// A server doing only what every webhook endpoint must: read the body, verify the signature.
pub(crate) async fn bare_server(secret: &'static str) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let header = headers.get("x-hub-signature").map(|v| v.as_bytes());
            match relay_core::verify_signature(secret.as_bytes(), &body, header) {
                Ok(()) => StatusCode::ACCEPTED,
                Err(_) => StatusCode::UNAUTHORIZED,
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

/// The database's own limit for the same rows: one INSERT + COMMIT per delivery.
pub(crate) async fn insert_baseline(
    pool: &PgPool,
    bodies: &[(String, Vec<u8>)],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    // The same table as the relay's (columns, indexes, compression), without the foreign key;
    // empty each time it is measured.
    sqlx::query("DROP TABLE IF EXISTS bench_deliveries")
        .execute(pool)
        .await?;
    sqlx::query("CREATE TABLE bench_deliveries (LIKE deliveries INCLUDING ALL)")
        .execute(pool)
        .await?;
    // Its own connections, without the pool's health check before each use: one round trip
    // per delivery, the least a single-row INSERT + COMMIT can cost.
    let pool = &sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(64))
        .min_connections(u32::try_from(concurrency).unwrap_or(64))
        .test_before_acquire(false)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    // Every connection open before the clock starts.
    let mut warm = Vec::new();
    for _ in 0..concurrency {
        warm.push(pool.acquire().await?);
    }
    drop(warm);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pool, bodies, counter) = (pool.clone(), bodies.to_vec(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let id = counter.fetch_add(1, Ordering::Relaxed);
                let (event_key, body) = &bodies[usize::try_from(id).unwrap_or(0) % bodies.len()];
                let sent = Instant::now();
                let result = sqlx::query(
                    "INSERT INTO bench_deliveries (integration_id, request_id, event_key, headers, body) VALUES ('bench', $1, $2, $3, $4)",
                )
                .bind(format!("insert-{id}"))
                .bind(event_key)
                .bind(serde_json::json!({ "x-event-key": event_key, "content-type": "application/json" }))
                .bind(body)
                .execute(&pool)
                .await;
                match result {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut l, e)) = task.await {
            latencies.append(&mut l);
            errors += e;
        }
    }
    // Its backends exit now, so that their CPU is counted (as the postmaster's children's)
    // by the reading that follows.
    pool.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Report {
        accepted: latencies.len() as u64,
        errors,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Peak resident set size (VmHWM) of this process, in MB.
pub(crate) fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
