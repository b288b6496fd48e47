//! Logging: `tracing` with fields, human-readable by default, JSON lines with
//! `RELAY_LOG_FORMAT=json`. Filter with `RUST_LOG` (default `info`).
//!
//! Lines are formatted where they are logged and written to stderr by a thread of their own,
//! as many to a `write` as have queued up. Written one `write` per line under stderr's lock,
//! as before, the two lines every delivery logs at `info` ("delivery stored", "delivery
//! planned") cost the relay 9 to 37 µs of CPU per delivery under load, more than anything
//! else it does per delivery (docs/PERFORMANCE.md, twenty-first session). Nothing is dropped:
//! when the queue is full, logging waits for it.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines queued for the writer before logging waits (each line is a buffer of its own).
const QUEUED_LINES: usize = 64 * 1024;

/// Keeps the log writer running; dropping it writes out every line still queued. Hold it
/// until the process has nothing more to log.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("relay-log")
        .finish(BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    // A second init (tests starting several servers) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { _writer: guard }
}
