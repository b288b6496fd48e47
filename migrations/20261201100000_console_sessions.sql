-- Sessions of the web console (/console). Kept in PostgreSQL, not in memory, so they survive a
-- restart and work across several relays behind one load balancer.

CREATE TABLE console_sessions (
    -- SHA-256 of the cookie value: a read of this table does not yield a usable cookie.
    id_hash        bytea PRIMARY KEY,
    -- Sent back in a hidden field of every form; useless without the cookie.
    csrf_token     text NOT NULL,
    -- One message shown on the next page after an action ("Redelivery queued").
    flash_kind     text CHECK (flash_kind IN ('info', 'error')),
    flash_message  text,
    -- A console path the message links to ("delivery 12"), or NULL.
    flash_href     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);

CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);

-- The console's overview and lists. The deliveries of one integration, newest first (the
-- overview's last delivery, the filtered list): costs one index entry per delivery.
CREATE INDEX deliveries_integration_id ON deliveries (integration_id, id);
-- Failures and dead jobs of the last hour: partial, so rows that never fail cost nothing.
CREATE INDEX deliveries_failed ON deliveries (integration_id, updated_at) WHERE status = 'failed';
CREATE INDEX jobs_dead ON jobs (integration_id, completed_at) WHERE state = 'dead';
