//! The load generator in a process of its own, so the relay's own CPU can be read from
//! `/proc` without the senders' share in it.

use std::time::Duration;

use anyhow::Context;

use crate::load::{Load, Report};

/// The first argument that makes this binary the load generator instead of the benchmark.
pub(crate) const CHILD_FLAG: &str = "--load-generator";

/// What the child prints: one line the parent parses.
pub(crate) struct ChildReport {
    pub accepted: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl ChildReport {
    pub(crate) fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }
}

/// `relay-bench --load-generator URL SECRET CONCURRENCY SECONDS PREFIX`: sends every
/// fixture in turn with request ids `PREFIX{n}`, then prints
/// `accepted errors elapsed_s p50_ms p99_ms`.
pub(crate) async fn run_child(args: &[String]) -> anyhow::Result<()> {
    let [url, secret, concurrency, seconds, prefix] = args else {
        anyhow::bail!("usage: relay-bench {CHILD_FLAG} URL SECRET CONCURRENCY SECONDS PREFIX");
    };
    let concurrency: usize = concurrency.parse().context("CONCURRENCY")?;
    let seconds: u64 = seconds.parse().context("SECONDS")?;
    let bodies = crate::load::fixtures()?;
    let report: Report = Load::new(url.clone(), secret, bodies, concurrency)
        .with_request_prefix(prefix)
        .run(Duration::from_secs(seconds))
        .await;
    println!(
        "{} {} {} {} {}",
        report.accepted,
        report.errors,
        report.elapsed.as_secs_f64(),
        report.p50_ms(),
        report.p99_ms()
    );
    Ok(())
}

/// Runs the load generator as a child process against `url` and waits for its report.
pub(crate) async fn spawn_load(
    url: &str,
    secret: &str,
    concurrency: usize,
    duration: Duration,
    request_prefix: &str,
) -> anyhow::Result<ChildReport> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .arg(CHILD_FLAG)
        .arg(url)
        .arg(secret)
        .arg(concurrency.to_string())
        .arg(duration.as_secs().to_string())
        .arg(request_prefix)
        .kill_on_drop(true)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "the load generator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [accepted, errors, elapsed, p50, p99] = fields[..] else {
        anyhow::bail!("the load generator printed {text:?}");
    };
    Ok(ChildReport {
        accepted: accepted.parse()?,
        errors: errors.parse()?,
        elapsed: Duration::from_secs_f64(elapsed.parse()?),
        p50_ms: p50.parse()?,
        p99_ms: p99.parse()?,
    })
}

/// CPU time (user + system) used so far by this process, all threads.
pub(crate) fn own_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| Stat::parse(&stat))
        .map_or(Duration::ZERO, |stat| ticks_to_duration(stat.own))
}

/// CPU time used so far by PostgreSQL: every live server process (backends, autovacuum, WAL
/// writer, checkpointer...) plus what the postmaster's exited children used (backends of
/// closed connections, finished autovacuum workers), as far as `/proc` shows them.
pub(crate) fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let stats: Vec<Stat> = entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .filter_map(|stat| Stat::parse(&stat))
        .collect();
    let ticks: u64 = stats
        .iter()
        .map(|stat| {
            let postmaster = !stats.iter().any(|parent| parent.pid == stat.parent);
            stat.own + if postmaster { stat.children } else { 0 }
        })
        .sum();
    ticks_to_duration(ticks)
}

/// The whole machine's CPU time so far, every core and process (`/proc/stat`'s first line):
/// what was busy, what was idle (waiting for I/O included), and what the hypervisor gave to
/// other guests while this one wanted to run ("steal"): on a shared machine that is the
/// neighbours' load, not this machine's work, so it is kept apart from both.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineCpu {
    pub busy: Duration,
    pub idle: Duration,
    pub stolen: Duration,
}

impl MachineCpu {
    pub(crate) fn now() -> Self {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| Self::parse(&stat))
            .unwrap_or_default()
    }

    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|field| field.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal; guest time is already in user.
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        let stolen = ticks.get(7).copied().unwrap_or(0);
        let all: u64 = ticks.iter().take(8).sum();
        Some(Self {
            busy: ticks_to_duration(all.saturating_sub(idle).saturating_sub(stolen)),
            idle: ticks_to_duration(idle),
            stolen: ticks_to_duration(stolen),
        })
    }

    /// What the machine did between `earlier` and this reading.
    pub(crate) fn since(self, earlier: Self) -> Self {
        Self {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            stolen: self.stolen.saturating_sub(earlier.stolen),
        }
    }

    /// The share of the machine that was idle, 0 to 1.
    pub(crate) fn idle_share(self) -> f64 {
        self.share(self.idle)
    }

    /// The share of the machine the hypervisor gave to other guests, 0 to 1.
    pub(crate) fn stolen_share(self) -> f64 {
        self.share(self.stolen)
    }

    fn share(self, part: Duration) -> f64 {
        let all = (self.busy + self.idle + self.stolen).as_secs_f64();
        if all > 0.0 {
            part.as_secs_f64() / all
        } else {
            0.0
        }
    }
}

/// The fields of a `/proc/<pid>/stat` line this needs, in clock ticks.
struct Stat {
    pid: u64,
    parent: u64,
    /// utime + stime.
    own: u64,
    /// cutime + cstime: children that exited and were waited for.
    children: u64,
}

impl Stat {
    /// Fields are counted after the parenthesised command name, which may hold spaces.
    fn parse(stat: &str) -> Option<Self> {
        let pid = stat.split_whitespace().next()?.parse().ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<u64> = after_name
            .split_whitespace()
            .map(|field| field.parse().unwrap_or(0))
            .collect();
        let field = |n: usize| fields.get(n - 3).copied();
        Some(Self {
            pid,
            parent: field(4)?,
            own: field(14)? + field(15)?,
            children: field(16)? + field(17)?,
        })
    }
}

fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_micros(ticks * 1_000_000 / clock_ticks_per_second())
}

/// The kernel's clock tick for `/proc` times, from the auxiliary vector (`AT_CLKTCK`), which
/// is what `sysconf(_SC_CLK_TCK)` reads, without unsafe code.
fn clock_ticks_per_second() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
    auxv.chunks_exact(16)
        .map(|pair| {
            let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().unwrap_or([0; 8]));
            (word(&pair[..8]), word(&pair[8..]))
        })
        .find(|(key, _)| *key == AT_CLKTCK)
        .map_or(100, |(_, value)| value.max(1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::MachineCpu;

    #[test]
    fn reads_busy_and_idle_from_the_first_line_of_proc_stat() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        let cpu = MachineCpu::parse(stat).expect("a cpu line");
        let tick = super::ticks_to_duration(1);
        assert_eq!(cpu.busy, tick * 160);
        assert_eq!(cpu.idle, tick * 840);
        assert_eq!(cpu.stolen, Duration::ZERO);
        assert!((cpu.idle_share() - 0.84).abs() < 1e-9);
        assert!(MachineCpu::parse("intr 1 2 3\n").is_none());
    }

    #[test]
    fn keeps_the_hypervisors_steal_apart_from_busy_and_idle() {
        let stat = "cpu  100 0 50 700 40 5 5 100 0 0\n";
        let cpu = MachineCpu::parse(stat).expect("a cpu line");
        let tick = super::ticks_to_duration(1);
        assert_eq!(cpu.busy, tick * 160);
        assert_eq!(cpu.idle, tick * 740);
        assert_eq!(cpu.stolen, tick * 100);
        assert!((cpu.stolen_share() - 0.1).abs() < 1e-9);
        assert!((cpu.idle_share() - 0.74).abs() < 1e-9);
        let later = MachineCpu::parse("cpu  200 0 50 800 40 5 5 150 0 0\n").expect("a cpu line");
        let phase = later.since(cpu);
        assert_eq!(phase.busy, tick * 100);
        assert_eq!(phase.stolen, tick * 50);
    }
}
