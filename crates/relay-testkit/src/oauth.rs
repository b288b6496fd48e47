//! Cloud's token endpoint, `POST /site/oauth2/access_token`, client-credentials grant only.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rand::Rng;
use serde_json::json;

use crate::app::{basic, json, Shared};

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    // The token endpoint speaks RFC 6749 errors, not the REST API's {"type": "error"} shape.
    json(
        status,
        json!({"error_description": description, "error": error}),
    )
}

fn random_token(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let tail: String = (0..32)
        .map(|_| {
            let n = rng.gen_range(0..62u8);
            char::from(match n {
                0..=9 => b'0' + n,
                10..=35 => b'a' + n - 10,
                _ => b'A' + n - 36,
            })
        })
        .collect();
    format!("{prefix}{tail}")
}

pub(crate) async fn access_token(
    AxState(shared): AxState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = shared.lock();
    st.token_requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Bitbucket answers bad consumer credentials with 400 and `unauthorized_client`.
    let Some((key, secret)) = basic(auth) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Requests must be authenticated using OAuth client credentials",
        );
    };
    if (key.as_str(), secret.as_str()) != (st.consumer.0.as_str(), st.consumer.1.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Invalid OAuth client credentials",
        );
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant = form
        .iter()
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.as_str());
    if grant != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {}", grant.unwrap_or("None")),
        );
    }
    let token = random_token("fake-at-");
    let lifetime = st.token_lifetime;
    let scopes = st.scopes.clone();
    st.tokens.insert(token.clone(), Instant::now() + lifetime);
    json(
        StatusCode::OK,
        json!({
            "access_token": token,
            "scopes": scopes,
            "expires_in": lifetime.as_secs(),
            "refresh_token": random_token("fake-rt-"),
            "token_type": "bearer",
            "state": "client_credentials",
        }),
    )
}
