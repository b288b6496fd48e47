-- The Argo CD plugin generator lists environments by status (active by default) across
-- integrations, as often as every ApplicationSet's requeue interval. Deleted environments keep
-- their rows forever, so without this index each call would read all of them.
CREATE INDEX environments_by_status ON environments (status, integration_id, name);
