-- The router's copy of each customer's segment as its owner says it (feedback's key-account
-- registry, shared by event): ticket segments come from here, not from an integration's
-- unverified customer.account_id. One row per customer with a segment.
CREATE TABLE customer_segments (
    customer_id uuid PRIMARY KEY,
    segment     text NOT NULL,
    source      text NOT NULL,                 -- e.g. feedback.key_accounts
    version     bigint NOT NULL DEFAULT 0,     -- the owner's version: older events are ignored
    updated_at  timestamptz NOT NULL DEFAULT now()
);
