-- Issue 17: processing a delivery as a HOT update. Processing rewrites every delivery once
-- (status, attempts, decisions, times); while any index names a column it changes, each
-- rewrite is a new row version with a new entry in every index of the table, three of them
-- at the right edge where ingest is inserting at the same moment. `status` was named by
-- three partial indexes, and the watermark (previous migration) leaves none of them needed
-- for what they were for:
-- * `deliveries_pending`: the claim, the read-ahead, the console's oldest pending delivery
--   and the queue gauges now walk `deliveries_integration_id` from the integration's
--   watermark, where the pending deliveries start;
-- * `deliveries_failed` (the console's failures of the last hour): a failed delivery always
--   has its error recorded (checked below from now on), and `last_error` only changes for
--   deliveries that fail or retry, so an index on it leaves the rest HOT;
-- * `deliveries_one_pending_sweep` (one pending idle sweep per integration, however many
--   relays queue one): the relays now queue sweeps one at a time under an advisory lock,
--   each seeing what the one before queued, through an index of sweeps alone.
-- Building the two new indexes reads the table once; both hold only rare rows.
DROP INDEX deliveries_pending;

DROP INDEX deliveries_failed;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_failed_with_error
    CHECK (status <> 'failed' OR last_error IS NOT NULL) NOT VALID;
CREATE INDEX deliveries_with_error ON deliveries (integration_id, id)
    WHERE last_error IS NOT NULL;

DROP INDEX deliveries_one_pending_sweep;
CREATE INDEX deliveries_sweeps ON deliveries (integration_id, id)
    WHERE event_key = 'relay:sweep';
