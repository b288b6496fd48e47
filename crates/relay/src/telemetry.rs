//! Logging: `tracing` with fields, human-readable by default, JSON lines with
//! `RELAY_LOG_FORMAT=json`. Filter with `RUST_LOG` (default `info`).
//!
//! Lines go to stderr through [`LogBuffer`]: a line is appended to a buffer where it is
//! logged, and the buffer is written out when it fills or every [`FLUSH_EVERY`], as many lines
//! to a `write` as have gathered. The relay logs two lines per delivery at `info`; one `write`
//! each, under stderr's lock, was one system call per line in the webhook's and the
//! processor's path (and, with stderr a pipe to journald or Docker, a wake-up of the reader per
//! line). A writer thread woken for every line (`tracing-appender`) measured worse than that
//! on two cores: its wake-up cost more than the `write` it saved (docs/PERFORMANCE.md,
//! twenty-first session).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Longest a line waits in the buffer before it is written out.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes gathered before the line that reaches them writes the buffer out itself.
const FULL_BYTES: usize = 64 * 1024;

/// Keeps the log buffer's flushing thread running; dropping it writes out every line still
/// buffered. Hold it until the process has nothing more to log.
#[must_use = "dropping the guard stops the log flusher"]
pub struct LogGuard {
    buffer: Arc<LogBuffer<std::io::Stderr>>,
    flusher: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.buffer.stop();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        self.buffer.flush_now();
    }
}

pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let ansi = std::io::stderr().is_terminal();
    let buffer = Arc::new(LogBuffer::new(std::io::stderr()));
    let flusher = {
        let buffer = buffer.clone();
        std::thread::Builder::new()
            .name("relay-log".into())
            .spawn(move || buffer.flush_until_stopped(FLUSH_EVERY))
            .ok()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Shared(buffer.clone()))
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
    LogGuard { buffer, flusher }
}

/// Lines gathered for `out`, written out in one `write_all` each time.
///
/// Two locks, so that appending a line never waits on a `write` in progress: `lines` is held
/// only to append or to swap the gathered lines out; `out` is held across the `write`, and
/// taken before the swap, so chunks reach `out` in the order they were gathered. Only the line
/// that fills the buffer writes it out itself, and so waits for any write in progress first:
/// with stderr blocked, loggers then slow down instead of the buffer growing without bound.
struct LogBuffer<W: Write> {
    lines: Mutex<Lines>,
    out: Mutex<Out<W>>,
    stopped: Condvar,
}

struct Lines {
    gathered: Vec<u8>,
    stopping: bool,
}

struct Out<W> {
    out: W,
    /// The buffer swapped in for the gathered lines, kept to spare an allocation per write.
    spare: Vec<u8>,
}

/// A thread that panicked while holding a lock leaves at worst a partial line: keep logging.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write> LogBuffer<W> {
    fn new(out: W) -> Self {
        Self {
            lines: Mutex::new(Lines {
                gathered: Vec::with_capacity(FULL_BYTES),
                stopping: false,
            }),
            out: Mutex::new(Out {
                out,
                spare: Vec::with_capacity(FULL_BYTES),
            }),
            stopped: Condvar::new(),
        }
    }

    fn append(&self, line: &[u8]) {
        let full = {
            let mut lines = lock(&self.lines);
            lines.gathered.extend_from_slice(line);
            lines.gathered.len() >= FULL_BYTES
        };
        if full {
            self.flush_now();
        }
    }

    /// Writes out what has gathered.
    fn flush_now(&self) {
        let mut out = lock(&self.out);
        let Out { out, spare } = &mut *out;
        {
            let mut lines = lock(&self.lines);
            if lines.gathered.is_empty() {
                return;
            }
            std::mem::swap(&mut lines.gathered, spare);
        }
        // Nowhere to report a failed write of the logs: the lines are dropped, not retried.
        let _ = out.write_all(spare);
        let _ = out.flush();
        spare.clear();
    }

    /// Writes out what has gathered every `period` until [`stop`](Self::stop).
    fn flush_until_stopped(&self, period: Duration) {
        loop {
            self.flush_now();
            let lines = lock(&self.lines);
            if lines.stopping {
                return;
            }
            drop(match self.stopped.wait_timeout(lines, period) {
                Ok((lines, _)) => lines,
                Err(poisoned) => poisoned.into_inner().0,
            });
        }
    }

    fn stop(&self) {
        lock(&self.lines).stopping = true;
        self.stopped.notify_all();
    }
}

/// What the formatter writes one line into.
struct BufferedLine<'a, W: Write>(&'a LogBuffer<W>);

impl<W: Write> Write for BufferedLine<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The subscriber's handle on the buffer it shares with [`LogGuard`].
struct Shared<W: Write>(Arc<LogBuffer<W>>);

impl<'a, W: Write + 'a> MakeWriter<'a> for Shared<W> {
    type Writer = BufferedLine<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        BufferedLine(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose writes the test can count and read.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorded {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorded {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().unwrap().clone()
        }
    }

    #[test]
    fn lines_gather_until_flushed_then_go_out_in_one_write() {
        let out = Recorded::default();
        let buffer = LogBuffer::new(out.clone());
        buffer.append(b"one\n");
        buffer.append(b"two\n");
        assert!(out.writes().is_empty());
        buffer.flush_now();
        assert_eq!(out.writes(), vec![b"one\ntwo\n".to_vec()]);
        buffer.flush_now();
        assert_eq!(out.writes().len(), 1, "nothing more to write");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_line_that_fills_it() {
        let out = Recorded::default();
        let buffer = LogBuffer::new(out.clone());
        let line = vec![b'x'; 1000];
        for _ in 0..FULL_BYTES / line.len() {
            buffer.append(&line);
        }
        assert!(out.writes().is_empty());
        buffer.append(&line);
        assert_eq!(out.writes().len(), 1);
        assert_eq!(out.writes()[0].len(), (FULL_BYTES / line.len() + 1) * 1000);
    }

    #[test]
    fn the_flusher_writes_within_its_period_and_stops() {
        let out = Recorded::default();
        let buffer = Arc::new(LogBuffer::new(out.clone()));
        let flusher = {
            let buffer = buffer.clone();
            std::thread::spawn(move || buffer.flush_until_stopped(Duration::from_millis(10)))
        };
        buffer.append(b"line\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.writes().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        buffer.stop();
        flusher.join().unwrap();
        assert_eq!(out.writes(), vec![b"line\n".to_vec()]);
    }
}
