//! A stand-in for the Kubernetes API server: just enough of it for the relay's Argo CD
//! refresh. It stores ApplicationSets as JSON, answers
//! `PATCH /apis/argoproj.io/v1alpha1/namespaces/{ns}/applicationsets/{name}` with a JSON merge
//! patch (RFC 7386) applied and the merged object returned, records every request, checks
//! the bearer token, and writes a kubeconfig file pointing at itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::listener::Listener;

pub const TOKEN: &str = "fake-kubernetes-token";

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct KubeRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct KubeState {
    /// `namespace/name` -> object.
    objects: Vec<(String, Value)>,
    requests: Vec<KubeRequest>,
    /// Status codes to answer with before behaving again.
    failures: Vec<u16>,
}

type Shared = Arc<Mutex<KubeState>>;

pub struct FakeKubernetes {
    state: Shared,
    listener: Listener,
    dir: tempfile::TempDir,
}

impl FakeKubernetes {
    pub async fn start() -> Self {
        let state = Shared::default();
        let router = Router::new()
            .route(
                "/apis/argoproj.io/v1alpha1/namespaces/{namespace}/applicationsets/{name}",
                any(application_set),
            )
            .fallback(unknown)
            .with_state(state.clone());
        let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self {
            state,
            listener: Listener::serve(bound, router),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener.addr)
    }

    /// Writes a kubeconfig (bearer [`TOKEN`]) for this server and returns its path.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             users:\n- name: fake\n  user:\n    token: {TOKEN}\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Stores an ApplicationSet as `kubectl apply` would have left it.
    pub fn add_application_set(&self, namespace: &str, name: &str) {
        let object = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet",
            "metadata": {
                "name": name, "namespace": namespace, "resourceVersion": "1",
                "uid": format!("uid-{namespace}-{name}"),
                "annotations": {"team": "web"}
            },
            "spec": {"generators": [{"plugin": {"configMapRef": {"name": "relay-plugin"}}}]}
        });
        self.lock()
            .objects
            .push((format!("{namespace}/{name}"), object));
    }

    pub fn application_set(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = format!("{namespace}/{name}");
        self.lock()
            .objects
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    /// Clears the refresh annotation, as Argo CD's controller does once it has reconciled.
    pub fn reconcile(&self, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        let mut state = self.lock();
        if let Some((_, object)) = state.objects.iter_mut().find(|(k, _)| *k == key) {
            if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
                annotations.remove("argocd.argoproj.io/application-set-refresh");
            }
        }
    }

    pub fn requests(&self) -> Vec<KubeRequest> {
        self.lock().requests.clone()
    }

    /// The next `codes.len()` requests are answered with these statuses.
    pub fn fail_next(&self, codes: &[u16]) {
        self.lock().failures.extend_from_slice(codes);
    }

    /// Refuses connections until [`FakeKubernetes::resume`].
    pub async fn stop(&self) {
        self.listener.stop().await;
    }

    pub async fn resume(&self) {
        self.listener.start().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KubeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()
    });
    (code, Json(body)).into_response()
}

async fn unknown(uri: Uri) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no route {uri}"),
    )
}

async fn application_set(
    State(state): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = KubeRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        content_type: header("content-type"),
        authorization: header("authorization"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(request.clone());
    if !state.failures.is_empty() {
        let code = StatusCode::from_u16(state.failures.remove(0)).unwrap();
        return status(code, "InternalError", "injected failure");
    }
    if request.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    if method != Method::PATCH {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only PATCH",
        );
    }
    if request.content_type.as_deref() != Some("application/merge-patch+json") {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the stand-in only takes merge patches",
        );
    }
    let key = format!("{namespace}/{name}");
    let Some((_, object)) = state.objects.iter_mut().find(|(k, _)| *k == key) else {
        let message = format!("applicationsets.argoproj.io \"{name}\" not found");
        return status(StatusCode::NOT_FOUND, "NotFound", &message);
    };
    merge(object, &request.body);
    let version = object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    object["metadata"]["resourceVersion"] = Value::String((version + 1).to_string());
    (StatusCode::OK, Json(object.clone())).into_response()
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
