-- The environment lifecycle: how "deployed" is learnt (deploy_feedback), the token the
-- deploy side reports with, the last deployment of each environment and the history of
-- reports.

ALTER TABLE integrations
    ADD COLUMN deploy_feedback text NOT NULL DEFAULT 'hook'
        CHECK (deploy_feedback IN ('hook', 'report')),
    -- AES-256-GCM ciphertext like the other secrets; NULL for integrations added before
    -- reports existed (they report with the admin token until one is set).
    ADD COLUMN deploy_report_token_ciphertext bytea;

ALTER TABLE environments
    ADD COLUMN last_deployment_commit      text,
    ADD COLUMN last_deployment_state       text
        CHECK (last_deployment_state IN ('in_progress', 'success', 'failure')),
    ADD COLUMN last_deployment_url         text,
    ADD COLUMN last_deployment_log_url     text,
    ADD COLUMN last_deployment_description text,
    ADD COLUMN last_deployment_reported_at timestamptz;

CREATE TABLE deployments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id  text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    environment     text NOT NULL,
    commit          text NOT NULL,
    state           text NOT NULL CHECK (state IN ('in_progress', 'success', 'failure')),
    url             text,
    log_url         text,
    description     text,
    -- Whether the report was about the environment's head when it arrived (only those
    -- reach Bitbucket).
    current_head    boolean NOT NULL,
    reported_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deployments_environment ON deployments (integration_id, environment, id);
