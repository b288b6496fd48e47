//! Retry schedules as data, so tests and operators can shorten or lengthen them.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Wait before attempt n+1 after attempt n failed; the last entry repeats.
    pub delays: Vec<Duration>,
    /// After this many failed attempts the item is parked (failed, visible, redeliverable).
    pub max_attempts: i32,
}

impl Default for RetrySchedule {
    /// About a minute in all: long enough to ride out a database failover, short enough
    /// that one bad delivery does not hold its integration back for long.
    fn default() -> Self {
        Self {
            delays: [1, 2, 5, 15, 30].map(Duration::from_secs).to_vec(),
            max_attempts: 6,
        }
    }
}

impl RetrySchedule {
    /// Delay after `attempts` failed attempts (1-based).
    pub fn delay_after(&self, attempts: i32) -> Duration {
        let index = usize::try_from(attempts.max(1) - 1).unwrap_or(0);
        self.delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_delay_repeats() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.delay_after(1), Duration::from_secs(1));
        assert_eq!(schedule.delay_after(5), Duration::from_secs(30));
        assert_eq!(schedule.delay_after(50), Duration::from_secs(30));
        assert_eq!(schedule.delay_after(0), Duration::from_secs(1));
    }
}
