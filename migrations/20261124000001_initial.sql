-- Initial schema: integrations (admin-edited rows), deliveries (every acknowledged webhook),
-- environments and jobs (written by the processor in the same transaction that marks a
-- delivery processed).

CREATE TABLE integrations (
    id                               text PRIMARY KEY,
    type                             text NOT NULL CHECK (type IN ('bitbucket', 'bitbucket_server')),
    repository                       text NOT NULL,
    -- Cloud OAuth consumer. The key identifies the consumer and is not a secret.
    oauth_key                        text,
    oauth_secret_ciphertext          bytea,
    -- Server / Data Center.
    base_url                         text,
    username                         text,
    token_ciphertext                 bytea,
    -- AES-256-GCM ciphertexts (see crates/relay/src/secrets.rs); never stored in clear.
    webhook_secret_ciphertext        bytea NOT NULL,
    -- Signs the events sent to deploy_hook_url (Standard Webhooks, "whsec_..." form).
    deploy_hook_secret_ciphertext    bytea NOT NULL,
    fetch_branches                   boolean NOT NULL DEFAULT true,
    -- What the admin asked for; the effective value is forced off when fetch_branches is off.
    prune_branches                   boolean NOT NULL DEFAULT true,
    build_pull_requests              boolean NOT NULL DEFAULT true,
    build_pull_requests_post_merge   boolean NOT NULL DEFAULT false,
    resync_pull_requests             boolean NOT NULL DEFAULT false,
    pull_requests_clone_parent_data  boolean NOT NULL DEFAULT true,
    build_fork_pull_requests         boolean NOT NULL DEFAULT false,
    deploy_remote                    text,
    deploy_hook_url                  text,
    environment_url                  text,
    default_branch                   text,
    created_at                       timestamptz NOT NULL DEFAULT now(),
    updated_at                       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT integrations_cloud_credentials CHECK (
        type <> 'bitbucket' OR (oauth_key IS NOT NULL AND oauth_secret_ciphertext IS NOT NULL)),
    CONSTRAINT integrations_server_credentials CHECK (
        type <> 'bitbucket_server' OR (base_url IS NOT NULL AND token_ciphertext IS NOT NULL))
);

CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id   text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    -- X-Request-UUID (Cloud) or X-Request-Id (Server); NULL when the sender gave none.
    request_id       text,
    event_key        text NOT NULL,
    -- The headers that matter (never the signature).
    headers          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The raw body exactly as received, so it can be re-verified and re-parsed.
    body             bytea NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processed', 'ignored', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    run_after        timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    -- The planner's output for this delivery (changes, jobs, notes), for `delivery:show`.
    decisions        jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Webhook bodies are JSON of a few to a few hundred KB: lz4 compresses them several times
-- faster than the default pglz, which otherwise dominates ingest CPU. Servers built without
-- lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; webhook bodies use pglz';
END $$;

CREATE UNIQUE INDEX deliveries_integration_request_id
    ON deliveries (integration_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX deliveries_pending ON deliveries (integration_id, id) WHERE status = 'pending';
CREATE INDEX deliveries_received_at ON deliveries (received_at);

CREATE TABLE environments (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id    text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    name              text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('production', 'branch', 'pull_request')),
    parent            text,
    status            text NOT NULL
                      CHECK (status IN ('inactive', 'active', 'deleting', 'deleted', 'failed')),
    branch            text,
    head_commit       text,
    pr_id                 bigint,
    pr_source_branch      text,
    pr_source_repository  text,
    pr_target_branch      text,
    pr_target_commit      text,
    pr_state              text,
    -- Bitbucket's update time of the pull request (epoch ms): late events compare against it.
    pr_updated_at_ms      bigint,
    failure_reason    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (integration_id, name)
);

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id   text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    delivery_id      bigint REFERENCES deliveries (id) ON DELETE SET NULL,
    kind             text NOT NULL,
    -- Jobs with the same key run one at a time, in id order: all git work of an integration
    -- shares one key (one mirror), deploy-side events share one per environment.
    queue_key        text NOT NULL,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    run_after        timestamptz NOT NULL DEFAULT now(),
    -- Lease of the runner holding a running job; an expired lease makes the job claimable.
    locked_until     timestamptz,
    last_error       text,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_open ON jobs (queue_key, id) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_runnable ON jobs (id) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_integration ON jobs (integration_id, id);

-- Processors LISTEN on this channel; one notification per statement keeps batched inserts cheap.
CREATE FUNCTION notify_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relay_deliveries', '');
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION notify_deliveries();

CREATE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relay_jobs', '');
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs();
