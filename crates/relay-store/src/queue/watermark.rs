//! Where an integration's queue starts: the id below which none of its deliveries is
//! pending (`delivery_watermarks.below`), so that a claim's probe skips the processed
//! deliveries instead of walking all of them.
//!
//! The bound moves one claim behind: a claim records the id after the last delivery it
//! claimed (the candidate) with its own transaction id, and a later claim, whose probe's
//! snapshot shows that no transaction below that id still runs, moves `below` up to the
//! lower of the candidate and the oldest pending delivery it found itself; a batch that
//! starts at `below` and holds every id up to its last moves `below` past itself at once
//! (the usual case for a relay with one busy integration). Why that never
//! skips a delivery, not even one committed late with a lower id, is in the migration that
//! added the table (`migrations/20261204100000_delivery_watermarks.sql`): it relies on the
//! deliveries' ids coming from their identity sequence without a cache (each `nextval`
//! higher than every earlier one, in any session) and on the triggers there.

use sqlx::PgConnection;

use crate::StoreError;

/// What a claim's probe saw of its integration's queue, to record with the batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watermark {
    /// The oldest pending delivery the probe found.
    pub oldest: i64,
    /// `delivery_watermarks.generation` as the probe read it.
    pub generation: i64,
    /// The lowest transaction id still running at the probe's snapshot.
    pub snapshot_xmin: i64,
    /// The id after the last delivery claimed: every lower id was given out before the
    /// claim read its batch, so before the claim's transaction got its id.
    pub next: i64,
    /// The claimed deliveries hold every id from `oldest` to `next - 1`: nothing else can
    /// have an id in that range, so once nothing under `oldest` is pending, nothing under
    /// `next` is either.
    pub gapless: bool,
}

/// Records `seen.next` as the next candidate and moves `below` up to the previous one if
/// it has settled (and past the batch, when the batch starts there and leaves no gap),
/// on the claim's transaction (so a rolled-back batch moves nothing). Void when a
/// delivery was set back to pending since the probe (the generation changed).
pub(crate) async fn advance(
    conn: &mut PgConnection,
    integration_id: &str,
    seen: Watermark,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"INSERT INTO delivery_watermarks AS w (integration_id, candidate, candidate_xid)
           VALUES ($1, $5, pg_current_xact_id()::text::bigint)
           ON CONFLICT (integration_id) DO UPDATE SET
               below = CASE
                   WHEN $6 AND $2 <= CASE WHEN w.candidate_xid <= $3
                                          THEN GREATEST(w.below, LEAST(w.candidate, $2))
                                          ELSE w.below END
                   THEN $5
                   WHEN w.candidate_xid <= $3
                   THEN GREATEST(w.below, LEAST(w.candidate, $2))
                   ELSE w.below END,
               candidate = CASE WHEN w.candidate_xid IS NULL OR w.candidate_xid <= $3
                                THEN EXCLUDED.candidate ELSE w.candidate END,
               candidate_xid = CASE WHEN w.candidate_xid IS NULL OR w.candidate_xid <= $3
                                    THEN EXCLUDED.candidate_xid ELSE w.candidate_xid END
           WHERE w.generation = $4"#,
        integration_id,
        seen.oldest,
        seen.snapshot_xmin,
        seen.generation,
        seen.next,
        seen.gapless,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
