-- Issue 17: the foreign key from deliveries to integrations, checked once per statement
-- instead of once per row. A foreign key runs its check (a query locking the integration
-- FOR KEY SHARE) for every inserted row; ingest inserts hundreds of rows of one integration
-- per statement, and that check was measured in psql on a copy of the table at ~9 µs of
-- backend CPU per row (44–46 against 35–37 µs). These triggers keep what the foreign key
-- promised:
-- * a delivery can only be stored for an integration that exists: the same FOR KEY SHARE
--   lock is taken (once per integration of the statement), so an integration being deleted
--   waits for the storing transaction, and a delivery for one deleted meanwhile fails with
--   the foreign key's own error code (23503, foreign_key_violation), which the relay already
--   answers as an unknown integration;
-- * deleting an integration deletes its deliveries (ON DELETE CASCADE), in the same
--   statement, after the storing transactions it waited for have committed;
-- * an integration's id cannot change while deliveries refer to it (NO ACTION).

ALTER TABLE deliveries DROP CONSTRAINT deliveries_integration_id_fkey;

-- The foreign key's own error, for an integration that is not there.
CREATE FUNCTION deliveries_missing_integration(wanted text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table "deliveries" violates foreign key constraint "deliveries_integration_id_fkey"'
        USING ERRCODE = 'foreign_key_violation',
              DETAIL = format('Key (integration_id)=(%s) is not present in table "integrations".', wanted),
              TABLE = 'deliveries',
              CONSTRAINT = 'deliveries_integration_id_fkey';
END $$;

CREATE FUNCTION deliveries_check_integrations() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted text;
BEGIN
    FOR wanted IN SELECT DISTINCT integration_id FROM stored LOOP
        PERFORM 1 FROM integrations WHERE id = wanted FOR KEY SHARE;
        IF NOT FOUND THEN
            PERFORM deliveries_missing_integration(wanted);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_check_integrations AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS stored
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_check_integrations();

-- Nothing moves a delivery to another integration; should anything try, it is checked too.
CREATE FUNCTION deliveries_check_moved_integration() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM integrations WHERE id = NEW.integration_id FOR KEY SHARE;
    IF NOT FOUND THEN
        PERFORM deliveries_missing_integration(NEW.integration_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_check_moved_integration AFTER UPDATE OF integration_id ON deliveries
    FOR EACH ROW WHEN (OLD.integration_id IS DISTINCT FROM NEW.integration_id)
    EXECUTE FUNCTION deliveries_check_moved_integration();

CREATE FUNCTION integrations_delete_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries WHERE integration_id IN (SELECT id FROM removed);
    RETURN NULL;
END $$;

CREATE TRIGGER integrations_delete_deliveries AFTER DELETE ON integrations
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION integrations_delete_deliveries();

CREATE FUNCTION integrations_keep_referenced_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deliveries WHERE integration_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "integrations" violates foreign key constraint "deliveries_integration_id_fkey" on table "deliveries"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "deliveries".', OLD.id),
                  TABLE = 'integrations',
                  CONSTRAINT = 'deliveries_integration_id_fkey';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER integrations_keep_referenced_id AFTER UPDATE OF id ON integrations
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION integrations_keep_referenced_id();
