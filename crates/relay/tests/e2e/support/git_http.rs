//! A loopback "Bitbucket" git server: smart HTTP through the real `git http-backend`, behind
//! a token check (Server style `Authorization: Bearer <token>` under `/scm/...`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

#[derive(Clone)]
struct Shared {
    root: PathBuf,
    token: Arc<Mutex<String>>,
}

pub(crate) struct GitHttp {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    token: Arc<Mutex<String>>,
}

impl GitHttp {
    pub(crate) async fn start(token: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let token = Arc::new(Mutex::new(token.to_owned()));
        let shared = Shared {
            root: root.path().to_path_buf(),
            token: token.clone(),
        };
        let app = axum::Router::new().fallback(serve).with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, root, token }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set_token(&self, token: &str) {
        *self.token.lock().unwrap() = token.to_owned();
    }

    /// A bare repository `{project}/{repo}.git` that accepts pushes over HTTP, plus a work
    /// tree to make commits in.
    pub(crate) fn create_repo(&self, project: &str, repo: &str) -> Upstream {
        let bare = self.root.path().join(project).join(format!("{repo}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "master"]);
        git(&bare, &["config", "http.receivepack", "true"]);
        let work = self.root.path().join(format!("{project}-{repo}-work"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "master"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let upstream = Upstream { work };
        upstream.commit("master", "README", "hello\n");
        upstream
    }
}

pub(crate) struct Upstream {
    pub work: PathBuf,
}

impl Upstream {
    /// Commits `file` = `content` on `branch` (created from master if new) and pushes it.
    pub(crate) fn commit(&self, branch: &str, file: &str, content: &str) -> String {
        let known = git(&self.work, &["branch", "--list", branch]);
        let any = git(&self.work, &["branch", "--list"]);
        if known.is_empty() && !any.is_empty() {
            git(&self.work, &["checkout", "-q", "-b", branch, "master"]);
        } else if !any.is_empty() {
            git(&self.work, &["checkout", "-q", branch]);
        }
        std::fs::write(self.work.join(file), content).unwrap();
        git(&self.work, &["add", "."]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("{file} on {branch}")],
        );
        git(&self.work, &["push", "-q", "-f", "origin", branch]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub(crate) fn delete_branch(&self, branch: &str) {
        git(&self.work, &["push", "-q", "origin", &format!(":{branch}")]);
    }
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn serve(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!("Bearer {}", shared.token.lock().unwrap());
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"fake\"")],
            "unauthorized",
        )
            .into_response();
    }
    let Some(path) = uri.path().strip_prefix("/scm") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "relay")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let write = async move {
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    };
    let (_, output) = tokio::join!(write, child.wait_with_output());
    let output = output.unwrap().stdout;
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return (StatusCode::BAD_GATEWAY, "bad CGI output").into_response();
    };
    let head = String::from_utf8_lossy(&output[..end]).into_owned();
    let mut response = Response::new(axum::body::Body::from(output[end + sep..].to_vec()));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *response.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.trim().as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
