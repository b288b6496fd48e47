//! git smart HTTP through the real `git http-backend` CGI, so clients talk to a genuine git
//! server (protocol v2, gzip request bodies, receive-pack) rather than a simulation.

use std::path::Path;
use std::process::Stdio;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// Runs one request through `git http-backend`. `path_info` is the path below the project
/// root, e.g. `/acme/widgets.git/info/refs`.
pub(crate) async fn serve(
    root: &Path,
    path_info: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH_INFO", path_info)
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", "fake")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Chunked uploads (large pushes) have no length: http-backend then reads to EOF, which
    // is only right when CONTENT_LENGTH is absent rather than zero.
    if let Some(len) = header("content-length") {
        cmd.env("CONTENT_LENGTH", len);
    }
    if let Some(enc) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(proto) = header("git-protocol") {
        // http-backend reads HTTP_GIT_PROTOCOL (the CGI name of the header) for protocol v2.
        cmd.env("HTTP_GIT_PROTOCOL", proto);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot run git http-backend: {e}"),
            )
                .into_response()
        }
    };
    let Some(mut stdin) = child.stdin.take() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Stream the body in while the child's output is collected, so neither side can fill a
    // pipe and wait on the other.
    let write = async move {
        let mut stream = body.into_data_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(stdin);
    };
    let (_, output) = tokio::join!(write, child.wait_with_output());
    match output {
        Ok(out) => parse_cgi(&out.stdout),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Turns CGI output (headers, blank line, body) into a response; `Status:` sets the code.
fn parse_cgi(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return (StatusCode::BAD_GATEWAY, "bad CGI output").into_response();
    };
    let head = String::from_utf8_lossy(&output[..end]).into_owned();
    let mut response = Response::new(Body::from(output[end + sep..].to_vec()));
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
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_status_and_headers() {
        let r = parse_cgi(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "text/plain");
        let r = parse_cgi(b"Content-Type: x\n\nbody");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(parse_cgi(b"garbage").status(), StatusCode::BAD_GATEWAY);
    }
}
