-- Contacts belong to the integration that posted them, not to everyone holding a key for the
-- channel: reads and retries (channel + external id, Idempotency-Key) are scoped to it.
-- An integration is the keys created under one name, so a rotated key (a new key of the same
-- name, then the old one revoked) keeps reading and retrying what the old one posted.
-- The unique indexes that scope retries are built concurrently by 0003.

ALTER TABLE api_keys ADD COLUMN integration_id uuid;
UPDATE api_keys k SET integration_id = (
    SELECT f.id FROM api_keys f WHERE f.name = k.name ORDER BY f.created_at, f.id LIMIT 1
);
ALTER TABLE api_keys ALTER COLUMN integration_id SET NOT NULL;

-- Contacts stored before keys had integrations: each one's key's integration. This rewrites
-- the table once (bounded by the migration statement timeout): on a large table, run it in a
-- maintenance window.
ALTER TABLE contacts ADD COLUMN integration_id uuid;
UPDATE contacts c SET integration_id = coalesce(
    (SELECT k.integration_id FROM api_keys k WHERE k.id = c.api_key_id),
    '00000000-0000-0000-0000-000000000000'
);
ALTER TABLE contacts ALTER COLUMN integration_id SET NOT NULL;
