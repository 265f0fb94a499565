-- Contacts belong to the integration that posted them, not to everyone holding a key for the
-- channel: reads and retries (channel + external id, Idempotency-Key) are scoped to it.
-- An integration is the keys created under one name, so a rotated key (a new key of the same
-- name, then the old one revoked) keeps reading and retrying what the old one posted.

ALTER TABLE api_keys ADD COLUMN integration_id uuid;
UPDATE api_keys k SET integration_id = (
    SELECT f.id FROM api_keys f WHERE f.name = k.name ORDER BY f.created_at, f.id LIMIT 1
);
ALTER TABLE api_keys ALTER COLUMN integration_id SET NOT NULL;
CREATE INDEX api_keys_name ON api_keys (name);

-- Contacts stored before keys had integrations: each one's key's integration. (This rewrites
-- the table once.)
ALTER TABLE contacts ADD COLUMN integration_id uuid;
UPDATE contacts c SET integration_id = coalesce(
    (SELECT k.integration_id FROM api_keys k WHERE k.id = c.api_key_id),
    '00000000-0000-0000-0000-000000000000'
);
ALTER TABLE contacts ALTER COLUMN integration_id SET NOT NULL;

ALTER TABLE contacts DROP CONSTRAINT contacts_channel_external_id_key;
DROP INDEX contacts_idempotency;
CREATE UNIQUE INDEX contacts_integration_external_id
    ON contacts (integration_id, channel, external_id);
CREATE UNIQUE INDEX contacts_integration_idempotency
    ON contacts (integration_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
