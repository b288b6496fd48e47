-- Secret rotation with grace (`integration:update --rotate-webhook-secret`,
-- `--rotate-deploy-hook-secret`): the secret an integration had before its last rotation,
-- still accepted (webhooks) or still signed with (deploy hook) until `expires_at`. Encrypted
-- like the current one (same key, same field).
CREATE TABLE previous_secrets (
    integration_id text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    field          text NOT NULL CHECK (field IN ('webhook_secret', 'deploy_hook_secret')),
    ciphertext     bytea NOT NULL,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, field)
);
