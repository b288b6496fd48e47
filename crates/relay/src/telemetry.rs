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
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
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
pub struct LogBuffer<W: Write> {
    state: Mutex<State<W>>,
    stopped: Condvar,
}

struct State<W> {
    lines: Vec<u8>,
    out: W,
    stopping: bool,
}

impl<W: Write> LogBuffer<W> {
    pub fn new(out: W) -> Self {
        Self {
            state: Mutex::new(State {
                lines: Vec::with_capacity(FULL_BYTES),
                out,
                stopping: false,
            }),
            stopped: Condvar::new(),
        }
    }

    /// A logging thread that panicked mid-line leaves at worst a partial line: keep logging.
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.lock();
        state.lines.extend_from_slice(line);
        if state.lines.len() >= FULL_BYTES {
            state.write_out();
        }
    }

    /// Writes out what is buffered.
    pub fn flush_now(&self) {
        self.lock().write_out();
    }

    /// Writes the buffer out every `period` until [`stop`](Self::stop).
    pub fn flush_until_stopped(&self, period: Duration) {
        let mut state = self.lock();
        while !state.stopping {
            state.write_out();
            state = match self.stopped.wait_timeout(state, period) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    pub fn stop(&self) {
        self.lock().stopping = true;
        self.stopped.notify_all();
    }
}

impl<W: Write> State<W> {
    fn write_out(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        // Nowhere to report a failed write of the logs: the lines are dropped, not retried.
        let _ = self.out.write_all(&self.lines);
        let _ = self.out.flush();
        self.lines.clear();
    }
}

/// What the formatter writes one line into.
pub struct BufferedLine<'a, W: Write>(&'a LogBuffer<W>);

impl<W: Write> Write for BufferedLine<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for LogBuffer<W> {
    type Writer = BufferedLine<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        BufferedLine(self)
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
        buffer.make_writer().write_all(b"one\n").unwrap();
        buffer.make_writer().write_all(b"two\n").unwrap();
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
            buffer.make_writer().write_all(&line).unwrap();
        }
        assert!(out.writes().is_empty());
        buffer.make_writer().write_all(&line).unwrap();
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
        buffer.make_writer().write_all(b"line\n").unwrap();
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
