//! Failed console logins, counted per client address and for the whole relay over a sliding
//! window. While either count is at its limit every login is refused (even a right token,
//! or the limit would still answer which guess was right).
//!
//! In memory, per relay: with several replicas the global ceiling multiplies by their number,
//! which still bounds guessing to a few hundred tokens an hour.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at most; past it the oldest ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug)]
pub struct LoginLimiter {
    per_client: usize,
    global: usize,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<Option<IpAddr>, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(5, 30, Duration::from_secs(60))
    }
}

impl LoginLimiter {
    pub fn new(per_client: usize, global: usize, window: Duration) -> Self {
        Self {
            per_client,
            global,
            window,
            state: Mutex::new(State::default()),
        }
    }

    /// `Err(wait)` while `client` (or everyone) has used up the failures of the window.
    pub fn check(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let window = self.window;
        let mut state = self.lock();
        expire(&mut state.all, now, window);
        let oldest = |times: &VecDeque<Instant>, limit: usize| {
            (times.len() >= limit)
                .then(|| times.front().copied())
                .flatten()
        };
        let client_block = state.clients.get_mut(&client).and_then(|times| {
            expire(times, now, window);
            oldest(times, self.per_client)
        });
        match client_block.or_else(|| oldest(&state.all, self.global)) {
            Some(first) => Err((first + window).saturating_duration_since(now)),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, client: Option<IpAddr>, now: Instant) {
        let window = self.window;
        let mut state = self.lock();
        expire(&mut state.all, now, window);
        if state.clients.len() >= MAX_CLIENTS && !state.clients.contains_key(&client) {
            state.clients.retain(|_, times| {
                expire(times, now, window);
                !times.is_empty()
            });
            if state.clients.len() >= MAX_CLIENTS {
                let stalest = state
                    .clients
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(ip) = stalest {
                    state.clients.remove(&ip);
                }
            }
        }
        let times = state.clients.entry(client).or_default();
        expire(times, now, window);
        times.push_back(now);
        state.all.push_back(now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters: one left half-updated by a panic is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the failures that have left the window.
fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_client_is_held_back_after_its_failures_until_the_window_passes() {
        let limiter = LoginLimiter::new(3, 100, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip(1), start).is_ok());
            limiter.record_failure(ip(1), start);
        }
        let wait = limiter.check(ip(1), start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(limiter.check(ip(2), start).is_ok(), "others are not held");
        let later = start + Duration::from_secs(61);
        assert!(limiter.check(ip(1), later).is_ok());
    }

    #[test]
    fn everyone_is_held_back_past_the_global_ceiling() {
        let limiter = LoginLimiter::new(3, 4, Duration::from_secs(60));
        let now = Instant::now();
        for last in 0..4 {
            limiter.record_failure(ip(last), now);
        }
        assert!(limiter.check(ip(200), now).is_err());
        assert!(limiter.check(None, now).is_err());
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let limiter = LoginLimiter::new(3, usize::MAX, Duration::from_secs(60));
        let now = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            limiter.record_failure(Some(IpAddr::from(n.to_be_bytes())), now);
        }
        assert!(limiter.lock().clients.len() <= MAX_CLIENTS);
    }
}
