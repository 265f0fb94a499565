-- The version of each customer's segment as the key-account registry last published it
-- (customer.segment_changed): one more with every create, change, deactivation or removal of a
-- key account, counted here rather than read from a clock, so consumers can keep the highest
-- and ignore an older event delivered late. Kept when the key account is deleted, so a customer
-- made a key account again continues the count.
CREATE TABLE customer_segment_versions (
    customer_id uuid PRIMARY KEY,
    version     bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
