-- Circuit breakers (crates/relay/src/worker/circuit.rs): one per integration and outside
-- dependency it calls, shared by every relay process on this database so replicas agree.
-- No row means closed with no failure since the last success.
CREATE TABLE circuits (
    integration_id       text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    -- 'deploy_hook' (deploy_hook_url) or 'bitbucket' (its REST API).
    target               text NOT NULL CHECK (target IN ('deploy_hook', 'bitbucket')),
    state                text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- Wait between probes while open; doubles after each failed probe, up to a ceiling.
    probe_interval_ms    bigint,
    -- Open: when the next probe may go. Half open: when the probe in flight counts as lost.
    next_probe_at        timestamptz,
    opened_at            timestamptz,
    last_error           text,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, target)
);
