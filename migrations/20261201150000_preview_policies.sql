-- Preview-environment policies (issue 13): pull-request comments, drafts, branch filters,
-- the idle TTL and the cap on active environments. Only additions, with defaults that keep
-- today's behaviour, so the previous version keeps running during a rolling upgrade.

ALTER TABLE integrations
    ADD COLUMN pull_request_comments       boolean NOT NULL DEFAULT true,
    ADD COLUMN build_draft_pull_requests   boolean NOT NULL DEFAULT true,
    -- Rust regex syntax, matched against whole branch names; NULL: no filter.
    ADD COLUMN branch_include              text,
    ADD COLUMN branch_exclude              text,
    ADD COLUMN pull_request_target_include text,
    -- Seconds; NULL: environments never expire.
    ADD COLUMN environment_idle_ttl        bigint CHECK (environment_idle_ttl > 0),
    -- NULL: no cap.
    ADD COLUMN max_active_environments     integer CHECK (max_active_environments > 0);

ALTER TABLE environments
    -- The last push, build or activation (epoch ms, the delivery's receipt time) or
    -- deployment report: what environment_idle_ttl counts from.
    ADD COLUMN last_activity_ms   bigint,
    -- Why the relay holds the environment inactive, and since when (epoch ms).
    ADD COLUMN waiting_reason     text
        CHECK (waiting_reason IN ('max_active_environments', 'idle', 'draft')),
    ADD COLUMN waiting_since_ms   bigint,
    -- The one comment on the pull request (Cloud's or Server's comment id; Server's version
    -- for optimistic locking). Kept when the environment is deleted: a reopened pull
    -- request edits the same comment.
    ADD COLUMN pr_comment_id      text,
    ADD COLUMN pr_comment_version bigint,
    -- Someone deleted the comment on Bitbucket: it is not posted again.
    ADD COLUMN pr_comment_deleted boolean NOT NULL DEFAULT false,
    -- Why comments are not posted (e.g. a missing permission), for environment:info.
    ADD COLUMN pr_comment_note    text;

-- Environments alive before this migration count their idleness from it.
UPDATE environments
SET last_activity_ms = (extract(epoch FROM updated_at) * 1000)::bigint
WHERE status NOT IN ('deleting', 'deleted');

-- At most one sweep waits per integration, however many relays queue one.
CREATE UNIQUE INDEX deliveries_one_pending_sweep
    ON deliveries (integration_id) WHERE event_key = 'relay:sweep' AND status = 'pending';
