-- Issue 17: where an integration's queue starts, so that finding its oldest pending delivery
-- no longer walks every delivery processed since the last VACUUM. Processing rewrites each
-- delivery out of `deliveries_pending`, but its entry stays in the index until VACUUM; the
-- entries of a whole run of processed deliveries sit on pages nothing inserts into any more,
-- so nothing but VACUUM removes them, and every claim's probe read all of them (measured in
-- relay-bench: 2,900 index pages and 4 ms per probe after 590,000 deliveries, 17 µs of
-- PostgreSQL time per delivery under load). The probe now starts at `below`.
--
-- Soundness (see relay_store::queue::watermark): a claim reads its batch, the pending
-- deliveries from the oldest on, up to some id L, and records c = L + 1 with its own
-- transaction id T. Every id under c was given out before L was, so (with the trigger below
-- taking the transaction id first) by a transaction whose id is lower than T, which the
-- claim gets only when it first writes, after reading. Once a later probe's snapshot has no
-- running transaction below T, every delivery under c that will ever commit is visible to
-- it; that probe, from `below`, finds the oldest pending delivery d, and nothing under
-- min(c, d) is pending or can commit any more. Only a delivery set back to pending can then
-- be under it, and that lowers `below` (the trigger below). A claim whose batch starts at
-- `below` and holds every id from there to L moves `below` to c at once: no other delivery
-- can have an id in that range.
CREATE TABLE delivery_watermarks (
    integration_id  text PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    -- No delivery of the integration under this id is pending.
    below           bigint NOT NULL DEFAULT 0,
    -- Counts deliveries set back to pending: an advance computed before one is void.
    generation      bigint NOT NULL DEFAULT 0,
    -- The id after an earlier claim's last delivery, and that claim's transaction id: once
    -- no transaction below it runs, `below` may move up to it.
    candidate       bigint,
    candidate_xid   bigint
);

-- A delivery's id comes from the identity sequence while its row is built, and a
-- transaction gets its id only when it writes its first row: between the two, a snapshot
-- would not know the transaction that holds the delivery's id. Taking the transaction id
-- before the statement's first row closes that gap, for every writer of deliveries.
CREATE FUNCTION deliveries_take_xact_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_take_xact_id BEFORE INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_take_xact_id();

-- `delivery:redeliver` (or anything else) setting a delivery back to pending.
CREATE FUNCTION deliveries_lower_watermark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE delivery_watermarks
    SET below = LEAST(below, NEW.id), generation = generation + 1
    WHERE integration_id = NEW.integration_id;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_lower_watermark AFTER UPDATE OF status ON deliveries
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
    EXECUTE FUNCTION deliveries_lower_watermark();
