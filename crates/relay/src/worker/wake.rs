//! The one loop behind every queue worker: `LISTEN` on the queue's channel (a trigger
//! notifies on every insert statement) plus a periodic sweep, which also picks up work whose
//! backoff has passed and covers notifications lost while the listener reconnected.
//!
//! A notification may name what it is for (the deliveries' one names their integrations):
//! when this process's workers already hold all of it, nobody is woken. The holder claims again
//! as soon as it has written its batch, and that claim sees everything committed before the
//! notification was sent; a sibling woken for it would only probe the queue and roll back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use relay_store::{PgPool, StoreError};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Whether a key a notification names (an integration id) is held by one of this process's
/// workers, which will claim again once it has finished what it holds.
pub(super) type InHand = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What wakes the workers: a notification naming something not [`InHand`], or anyone
/// notifying `notify` (the processor does when an integration's rest ends).
pub(super) struct Wake {
    pub notify: Arc<Notify>,
    pub in_hand: InHand,
}

impl Wake {
    /// Every notification wakes the workers.
    pub(super) fn on_every_notification() -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            in_hand: Arc::new(|_: &str| false),
        }
    }
}

/// Runs `workers` copies of `step` plus one listener until `shutdown`. `step` claims and
/// finishes one unit of work and says whether it found any; a worker calls it until it finds
/// none, then sleeps until it is woken or the sweep. A worker finishes the step it is in
/// before it stops.
pub(super) async fn run<S, F>(
    pool: PgPool,
    channel: &'static str,
    workers: usize,
    sweep: Duration,
    shutdown: CancellationToken,
    step: S,
    Wake {
        notify: wake,
        in_hand,
    }: Wake,
) where
    S: Fn() -> F + Clone + Send + 'static,
    F: Future<Output = Result<bool, StoreError>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let listener = Listener {
        pool,
        channel,
        wake: wake.clone(),
        in_hand,
    };
    tasks.spawn(listener.run(shutdown.clone()));
    for worker in 0..workers.max(1) {
        let drain = Drain {
            worker,
            channel,
            wake: wake.clone(),
            sweep,
        };
        tasks.spawn(drain.run(shutdown.clone(), step.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

struct Listener {
    pool: PgPool,
    channel: &'static str,
    wake: Arc<Notify>,
    in_hand: InHand,
}

impl Listener {
    async fn run(self, shutdown: CancellationToken) {
        let channel = self.channel;
        let mut delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let connected = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(channel).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = match connected.await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(channel, error = %err, "cannot LISTEN yet; sweeping meanwhile");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            delay = Duration::from_millis(200);
            // Anything inserted while not listening is picked up now.
            self.wake.notify_waiters();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(notification) => {
                            if wakes(notification.payload(), &*self.in_hand) {
                                self.wake.notify_waiters();
                            }
                        }
                        Err(err) => {
                            tracing::warn!(channel, error = %err, "LISTEN connection lost");
                            break;
                        }
                    },
                }
            }
        }
    }
}

/// Whether a notification with `payload` wakes the workers: not when it names keys and
/// every one of them is in hand; an empty payload names nothing, so it always does.
fn wakes(payload: &str, in_hand: &dyn Fn(&str) -> bool) -> bool {
    let mut named = payload.split(' ').filter(|key| !key.is_empty()).peekable();
    named.peek().is_none() || named.any(|key| !in_hand(key))
}

struct Drain {
    worker: usize,
    channel: &'static str,
    wake: Arc<Notify>,
    sweep: Duration,
}

impl Drain {
    async fn run<S, F>(self, shutdown: CancellationToken, step: S)
    where
        S: Fn() -> F,
        F: Future<Output = Result<bool, StoreError>>,
    {
        while !shutdown.is_cancelled() {
            // Registered before draining, so a notification that arrives mid-drain is kept.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            while !shutdown.is_cancelled() {
                match step().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(err) => {
                        let (worker, channel) = (self.worker, self.channel);
                        tracing::warn!(worker, channel, error = %err, "cannot claim work");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.sweep) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wakes;

    #[test]
    fn a_notification_naming_only_held_keys_wakes_nobody() {
        let held = |key: &str| key == "app" || key == "web";
        assert!(!wakes("app", &held));
        assert!(!wakes("app web", &held));
    }

    #[test]
    fn a_notification_naming_a_key_not_held_wakes_the_workers() {
        let held = |key: &str| key == "app";
        assert!(wakes("api", &held));
        assert!(wakes("app api", &held));
        assert!(wakes("api", &|_: &str| false));
    }

    #[test]
    fn a_notification_naming_nothing_wakes_the_workers() {
        let held = |_: &str| true;
        assert!(wakes("", &held));
        assert!(wakes(" ", &held));
    }
}
