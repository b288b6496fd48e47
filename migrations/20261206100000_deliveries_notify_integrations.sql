-- Issue 17: the deliveries' notification names the integrations its statement stored
-- deliveries for (ids separated by spaces), so that a relay whose worker already holds an
-- integration does not wake its other workers for it: that worker claims again as soon as
-- its batch is written, and a sibling woken for it only probed the queue and rolled back
-- (measured in relay-bench: about three such empty claims for every batch under load). A
-- statement for more integrations than a payload can name notifies with an empty payload,
-- which wakes every worker, as every notification did before. The transition table is the
-- one the integration check (deliveries_check_integrations) collects for the same statement.
CREATE OR REPLACE FUNCTION notify_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    named text;
BEGIN
    SELECT string_agg(DISTINCT integration_id, ' ' ORDER BY integration_id) INTO named FROM stored;
    IF named IS NULL THEN
        -- Nothing stored (every row a request id seen before): nothing to wake for.
        RETURN NULL;
    END IF;
    -- PostgreSQL's payload limit is 8000 bytes.
    IF octet_length(named) > 4000 THEN
        named := '';
    END IF;
    PERFORM pg_notify('relay_deliveries', named);
    RETURN NULL;
END $$;

DROP TRIGGER deliveries_notify ON deliveries;
CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS stored
    FOR EACH STATEMENT EXECUTE FUNCTION notify_deliveries();
