//! One HTTP exchange with retries: 429 and 5xx (and network failures) are retried with
//! exponential backoff or the server's `Retry-After`, bounded by [`RetryPolicy`]; everything
//! else maps to a typed [`Error`] at once.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::config::{ClientOptions, RetryPolicy};
use crate::error::{Error, Result};

pub(crate) enum Auth<'a> {
    Bearer(&'a SecretString),
    Basic {
        user: &'a str,
        password: &'a SecretString,
    },
}

pub(crate) enum Payload<'a> {
    Empty,
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub payload: Payload<'a>,
    /// Whether repeating the request after an unknown outcome (5xx, timeout) is harmless.
    /// Non-idempotent calls are still retried after 429 and connection failures, where
    /// Bitbucket never processed them.
    pub idempotent: bool,
}

impl<'a> Call<'a> {
    pub(crate) fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            payload: Payload::Empty,
            idempotent: true,
        }
    }
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::InvalidResponse(format!("body is not JSON: {e}")))
    }
}

/// A failed attempt, and whether (and when) another one may follow.
struct Failure {
    error: Error,
    retry: bool,
    after: Option<Duration>,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Transport {
    pub(crate) fn new(options: &ClientOptions) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            retry: options.retry,
        })
    }

    pub(crate) async fn execute(&self, call: &Call<'_>, auth: &Auth<'_>) -> Result<Reply> {
        let mut attempt: u32 = 0;
        loop {
            let failure = match self.once(call, auth).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            if !failure.retry || attempt >= self.retry.max_retries {
                return Err(failure.error);
            }
            let wait = match failure.after {
                Some(after) if after > self.retry.max_retry_after => return Err(failure.error),
                Some(after) => after,
                None => backoff(&self.retry, attempt),
            };
            tracing::debug!(
                method = %call.method,
                path = call.url.path(),
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %failure.error,
                "retrying Bitbucket request"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn once(&self, call: &Call<'_>, auth: &Auth<'_>) -> Result<Reply, Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        request = match auth {
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
        };
        request = match &call.payload {
            Payload::Empty => request,
            Payload::Json(value) => request.json(value),
            Payload::Form(pairs) => request.form(pairs),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                // A refused connection never reached Bitbucket: safe to repeat anything.
                let retry = call.idempotent || e.is_connect();
                return Err(Failure {
                    error: Error::Network(e),
                    retry,
                    after: None,
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(Failure {
                    error: Error::Network(e),
                    retry: call.idempotent,
                    after: None,
                })
            }
        };
        if status.is_success() {
            return Ok(Reply { status, body });
        }
        let message = error_message(&body);
        let (error, retry) = match status.as_u16() {
            401 => (Error::Unauthorized { message }, false),
            403 => (Error::Forbidden { message }, false),
            404 => (
                Error::NotFound {
                    what: format!("{} {}", call.method, call.url.path()),
                    message,
                },
                false,
            ),
            429 => (Error::RateLimited { retry_after }, true),
            s @ 500..=599 => (Error::Server { status: s }, call.idempotent),
            s => (Error::Rejected { status: s, message }, false),
        };
        Err(Failure {
            error,
            retry,
            after: retry_after,
        })
    }
}

/// Exponential backoff with jitter in [50 %, 100 %] so a fleet of relays does not retry
/// in lockstep.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(policy.max_backoff);
    // RandomState is seeded randomly per instance: enough entropy for jitter, no extra crate.
    let noise = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (noise % 1000) as f64 / 2000.0;
    base.mul_f64(fraction)
}

/// Bitbucket's own explanation: Cloud `error.message`, Server `errors[0].message`, OAuth
/// `error_description`. Clipped; anything that is not such JSON (HTML pages) is dropped.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = v
        .pointer("/error/message")
        .or_else(|| v.pointer("/errors/0/message"))
        .or_else(|| v.get("error_description"))
        .or_else(|| v.get("error").filter(|e| e.is_string()))
        .and_then(Value::as_str)?;
    Some(crate::types::clip(text, 300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_each_shape() {
        let cloud = br#"{"type":"error","error":{"message":"Repository not found"}}"#;
        assert_eq!(
            error_message(cloud).as_deref(),
            Some("Repository not found")
        );
        let server = br#"{"errors":[{"context":null,"message":"nope","exceptionName":"x"}]}"#;
        assert_eq!(error_message(server).as_deref(), Some("nope"));
        let oauth = br#"{"error":"unauthorized_client","error_description":"Invalid"}"#;
        assert_eq!(error_message(oauth).as_deref(), Some("Invalid"));
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(1),
        };
        let first = backoff(&p, 0);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        assert!(backoff(&p, 10) <= Duration::from_millis(300));
    }
}
