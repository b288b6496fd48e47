-- The activity log (`integration:activity:list`, `integration:activity:log`): deliveries
-- and jobs are read from their own tables; these hold what has no table of its own (circuit
-- breaker changes) and the timestamped lines of every activity (job attempts, circuit
-- details). Pruned after RELAY_ACTIVITY_RETENTION.
CREATE TABLE activities (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    type           text NOT NULL CHECK (type IN ('circuit')),
    result         text CHECK (result IN ('success', 'failure')),
    description    text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_integration ON activities (integration_id, id);
CREATE INDEX activities_created_at ON activities (created_at);

CREATE TABLE activity_lines (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    -- The activity's id as the log shows it: 'job-12', 'circuit-3'.
    activity       text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    line           text NOT NULL
);
CREATE INDEX activity_lines_activity ON activity_lines (activity, id);
CREATE INDEX activity_lines_at ON activity_lines (at);
