//! `relay serve` as a child process, for tests that need the real binary.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::cli::Relay;

/// Killed when dropped, so a failing test leaves no relay behind holding connections.
pub(crate) struct ServeProcess {
    child: Option<Child>,
    pub addr: String,
}

impl ServeProcess {
    /// `relay serve` with JSON debug logs captured (read them with `terminate`).
    pub(crate) fn start(relay: &Relay) -> Self {
        Self::start_with(relay, &[], true)
    }

    /// `relay serve` with extra environment; `capture_logs: false` discards them, which a
    /// long run under load needs (an unread pipe would fill and stall the relay).
    pub(crate) fn start_with(relay: &Relay, env: &[(&str, &str)], capture_logs: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = relay.command(&["serve"]);
        command
            .env("RELAY_LISTEN", &addr)
            .env("RELAY_LOG_FORMAT", "json")
            .env("RUST_LOG", if capture_logs { "debug" } else { "warn" })
            .stdout(Stdio::null())
            .stderr(if capture_logs {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = reqwest::blocking_get(&format!("http://{addr}/readyz")) {
                if response == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "relay serve did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child: Some(child),
            addr,
        }
    }

    /// Reads the relay's log lines as they are written (`start` captures them); `terminate`
    /// then returns none.
    pub(crate) fn follow_logs(&mut self) -> LiveLogs {
        let child = self.child.as_mut().expect("the relay is running");
        let stderr = child
            .stderr
            .take()
            .expect("logs captured (ServeProcess::start)");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        LiveLogs { lines }
    }

    /// SIGTERM, without waiting: the relay drains and exits (see `terminate`).
    pub(crate) fn sigterm(&self) {
        let child = self.child.as_ref().expect("the relay is running");
        rustix::process::kill_process(rustix::process::Pid::from_child(child), Signal::TERM)
            .expect("SIGTERM the relay");
    }

    /// SIGKILL: no chance to finish anything.
    pub(crate) fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.sigterm();
        let child = self.child.take().unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// The log lines of a running relay (`ServeProcess::follow_logs`).
pub(crate) struct LiveLogs {
    lines: std::sync::mpsc::Receiver<String>,
}

impl LiveLogs {
    /// The first line `matches` accepts within 10 s; otherwise every line seen.
    pub(crate) fn wait_for(&self, matches: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return Ok(line),
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => break,
            }
        }
        Err(seen)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

mod reqwest {
    /// A tiny blocking GET returning the status code, so the helper needs no runtime.
    pub(super) fn blocking_get(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status"))
    }
}
