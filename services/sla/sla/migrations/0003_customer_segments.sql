-- Each customer's segment as its owner says it (feedback's key-account registry, by
-- customer.segment_changed): a new ticket's policy is matched with it, not only with the
-- segment the router's ticket.opened states. A row with no segment records a key account
-- deactivated or removed, with its version, so an older event delivered late changes nothing.
CREATE TABLE sla_customer_segments (
    customer_id uuid PRIMARY KEY,
    segment     text,
    source      text NOT NULL,
    version     bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
