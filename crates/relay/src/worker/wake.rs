//! The one loop behind every queue worker: `LISTEN` on the queue's channel (a trigger
//! notifies on every insert) plus a periodic sweep, which also picks up work whose backoff has
//! passed and covers notifications lost while the listener reconnected.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use relay_store::{PgPool, StoreError};
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Runs `workers` copies of `step` plus one listener until `shutdown`. `step` claims and
/// finishes one unit of work and says whether it found any; a worker calls it until it finds
/// none, then sleeps until a notification or the sweep. A worker finishes the step it is in
/// before it stops.
pub(super) async fn run<S, F>(
    pool: PgPool,
    channel: &'static str,
    workers: usize,
    sweep: Duration,
    shutdown: CancellationToken,
    step: S,
) where
    S: Fn() -> F + Clone + Send + 'static,
    F: Future<Output = Result<bool, StoreError>> + Send + 'static,
{
    let wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    tasks.spawn(listen(pool, channel, wake.clone(), shutdown.clone()));
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

async fn listen(
    pool: PgPool,
    channel: &'static str,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
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
        wake.notify_waiters();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.recv() => match received {
                    Ok(_) => wake.notify_waiters(),
                    Err(err) => {
                        tracing::warn!(channel, error = %err, "LISTEN connection lost");
                        break;
                    }
                },
            }
        }
    }
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
