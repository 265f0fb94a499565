-- migrate: no-transaction
-- The channel id and the Idempotency-Key are unique per integration (see 0002), no longer
-- across all integrations: the new unique indexes are built without blocking writes, then the
-- old ones dropped. Each statement may run again after a failure (an interrupted concurrent
-- build leaves an invalid index, dropped first).

DROP INDEX CONCURRENTLY IF EXISTS contacts_integration_external_id;
CREATE UNIQUE INDEX CONCURRENTLY contacts_integration_external_id
    ON contacts (integration_id, channel, external_id);

DROP INDEX CONCURRENTLY IF EXISTS contacts_integration_idempotency;
CREATE UNIQUE INDEX CONCURRENTLY contacts_integration_idempotency
    ON contacts (integration_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_channel_external_id_key;
DROP INDEX CONCURRENTLY IF EXISTS contacts_idempotency;

-- Finding a name's integration when a key is created.
DROP INDEX CONCURRENTLY IF EXISTS api_keys_name;
CREATE INDEX CONCURRENTLY api_keys_name ON api_keys (name);
