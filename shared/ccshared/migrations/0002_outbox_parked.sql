-- Outbox rows Kafka refuses for good (too large for the broker or the producer, an invalid
-- topic name, a topic this service may not write): the relay moves each here with the error so
-- that the rows after it are still published. `python -m ccshared.outbox_admin` (make outbox)
-- lists them and moves them back to the outbox or discards them. `id` is the row's outbox id.
CREATE TABLE outbox_parked (
    id          bigint PRIMARY KEY,
    topic       text NOT NULL,
    key         text NOT NULL,
    event_id    uuid NOT NULL,
    event_type  text NOT NULL,
    value       bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL,
    error       text NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
