//! Reading an integration's next batch while its current one is written.
//!
//! When a backlog is drained, every claim reads a full batch of bodies (1,000 of them, ~4.5
//! MB in relay-bench) with the integration's lock held, and nothing else of that integration
//! can happen meanwhile: measured 17–20 ms per claim for PostgreSQL to decompress and send
//! them, a fifth of each batch's time. The processor therefore reads the next batch ahead,
//! on a connection of its own and without any lock, while the current batch is planned and
//! written; the next claim then checks under the lock, with a read of ids alone, which of
//! those rows are still exactly the integration's oldest pending deliveries, and takes
//! those. What the check does not confirm is read again as usual, so a read-ahead that went
//! stale (another relay processed the rows, an older delivery was committed late or
//! redelivered, a retry moved one into backoff) costs time, never order or exactly-once.

use sqlx::{PgConnection, PgPool};

use super::{read_batch, QueuedDelivery, BEGIN_CLAIM};
use crate::StoreError;

/// Pending deliveries of one integration read without its lock: a guess at its next batch,
/// which only [`ReadAhead::confirm`] turns into deliveries to process.
#[derive(Debug)]
pub struct ReadAhead {
    integration_id: String,
    deliveries: Vec<QueuedDelivery>,
}

impl ReadAhead {
    /// The due pending deliveries of `integration_id` after `after_id`, in order, up to
    /// `max` and the batch's body bound, read in a read-only transaction of their own.
    pub async fn read(
        pool: &PgPool,
        integration_id: &str,
        after_id: i64,
        max: i64,
    ) -> Result<Self, StoreError> {
        // The claim's plan: a bitmap scan here would read the whole backlog.
        let mut tx = pool.begin_with(BEGIN_CLAIM).await?;
        let deliveries =
            read_batch(&mut tx, integration_id, after_id.saturating_add(1), max).await?;
        tx.commit().await?;
        Ok(Self {
            integration_id: integration_id.to_owned(),
            deliveries,
        })
    }

    pub fn integration_id(&self) -> &str {
        &self.integration_id
    }

    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// The rows read, in order (not yet confirmed: see [`ReadAhead::confirm`]).
    pub fn deliveries(&self) -> &[QueuedDelivery] {
        &self.deliveries
    }

    /// Under the integration's lock, on the claim's transaction: the longest prefix of the
    /// rows read ahead that are, in order, the integration's oldest due pending deliveries
    /// from `oldest` on, with their attempts as they are now. Empty when the first is not
    /// (an older delivery is pending, or the rows were processed elsewhere).
    pub(super) async fn confirm(
        self,
        tx: &mut PgConnection,
        oldest: i64,
    ) -> Result<Vec<QueuedDelivery>, StoreError> {
        let limit = i64::try_from(self.deliveries.len()).unwrap_or(i64::MAX);
        let current = sqlx::query!(
            r#"SELECT id, attempts, run_after <= now() AS "due!"
               FROM deliveries
               WHERE integration_id = $1 AND status = 'pending' AND id >= $2
               ORDER BY id
               LIMIT $3"#,
            self.integration_id,
            oldest,
            limit,
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut confirmed = Vec::with_capacity(current.len());
        for (mut delivery, now) in self.deliveries.into_iter().zip(current) {
            if delivery.id != now.id || !now.due {
                break;
            }
            delivery.attempts = now.attempts;
            confirmed.push(delivery);
        }
        Ok(confirmed)
    }
}
