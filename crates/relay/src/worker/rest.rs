//! Under load, an integration rests for a moment between its batches, so that its deliveries
//! gather into bigger ones.
//!
//! A batch pays a claim, a transaction and a statement per table whatever its size; under a
//! steady stream the processor would otherwise claim again the moment a batch is written and
//! find only the ~100 deliveries that arrived meanwhile, paying those fixed costs again and
//! again while ingest competes for the same cores. An integration whose batch shows load (at
//! least [`SHOWS_LOAD`] deliveries) but no backlog (fewer than the batch size) is not claimed
//! again by this process until `interval` after that batch's claim (a batch cut short by the
//! batch size or the bound on its bodies' bytes is a backlog); other integrations go on
//! meanwhile, and when the rest ends the workers are woken. A trickle of webhooks never rests
//! (each is planned at once), and a backlog is drained without pause.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The fewest deliveries in a batch that make its integration rest: fewer say the stream is
/// a trickle, where planning each at once costs little.
pub const SHOWS_LOAD: usize = 16;

/// Integrations resting in this process, until when.
pub(super) struct Rests {
    interval: Duration,
    until: Mutex<HashMap<String, Instant>>,
    /// The workers' wake-up, notified when a rest ends.
    wake: Arc<Notify>,
}

impl Rests {
    pub(super) fn new(interval: Duration, wake: Arc<Notify>) -> Self {
        Self {
            interval,
            until: Mutex::default(),
            wake,
        }
    }

    /// Whether `integration_id` is resting now.
    pub(super) fn is_resting(&self, integration_id: &str) -> bool {
        let now = Instant::now();
        self.lock()
            .get(integration_id)
            .is_some_and(|until| *until > now)
    }

    /// The integrations resting now; rests that have ended are forgotten.
    pub(super) fn resting_now(&self) -> Vec<String> {
        let now = Instant::now();
        let mut until = self.lock();
        until.retain(|_, until| *until > now);
        until.keys().cloned().collect()
    }

    /// After a batch of `count` deliveries claimed at `claimed_at`: rests its integration
    /// until `interval` after the claim, if the batch showed load and no `backlog` (it was
    /// not cut short by the batch's bounds) and that moment is still ahead.
    pub(super) fn after_batch(
        &self,
        integration_id: &str,
        count: usize,
        backlog: bool,
        claimed_at: Instant,
    ) {
        if self.interval.is_zero() || count < SHOWS_LOAD || backlog {
            return;
        }
        let until = claimed_at + self.interval;
        if until <= Instant::now() {
            return;
        }
        self.lock().insert(integration_id.to_owned(), until);
        let wake = self.wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            wake.notify_waiters();
        });
    }

    /// A panic elsewhere while the map was locked leaves it consistent (one insert or
    /// retain), so a poisoned lock is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rests(interval_ms: u64) -> Rests {
        Rests::new(Duration::from_millis(interval_ms), Arc::new(Notify::new()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_under_load_rests_its_integration_until_the_interval_after_its_claim() {
        let rests = rests(50);
        let claimed_at = Instant::now();
        tokio::time::advance(Duration::from_millis(20)).await;
        rests.after_batch("app", 120, false, claimed_at);
        assert!(rests.is_resting("app"));
        assert!(!rests.is_resting("web"));
        assert_eq!(rests.resting_now(), vec!["app".to_owned()]);
        tokio::time::advance(Duration::from_millis(30)).await;
        assert!(!rests.is_resting("app"));
        assert!(rests.resting_now().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_a_backlog_or_no_interval_never_rests() {
        let claimed_at = Instant::now();
        let rests_50 = rests(50);
        rests_50.after_batch("trickle", SHOWS_LOAD - 1, false, claimed_at);
        rests_50.after_batch("backlog", 1000, true, claimed_at);
        assert!(rests_50.resting_now().is_empty());
        let off = rests(0);
        off.after_batch("app", 500, false, claimed_at);
        assert!(off.resting_now().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_took_longer_than_the_interval_does_not_rest() {
        let rests = rests(50);
        let claimed_at = Instant::now();
        tokio::time::advance(Duration::from_millis(60)).await;
        rests.after_batch("app", 500, false, claimed_at);
        assert!(!rests.is_resting("app"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_workers_are_woken_when_a_rest_ends() {
        let wake = Arc::new(Notify::new());
        let rests = Rests::new(Duration::from_millis(50), wake.clone());
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        rests.after_batch("app", 100, false, Instant::now());
        tokio::time::timeout(Duration::from_millis(49), &mut woken)
            .await
            .expect_err("woken before the rest ended");
        tokio::time::timeout(Duration::from_millis(2), &mut woken)
            .await
            .expect("woken when the rest ended");
    }
}
