-- Customers merged by a supervisor (customer.merged): each merged customer and the one it
-- became, so a merge read out of order (B into C before A into B: the events are keyed by
-- their targets) still moves A's rows to C. Customers merged into a merged one name the last.
CREATE TABLE merged_customers (
    customer_id  uuid PRIMARY KEY,
    merged_into  uuid NOT NULL,
    merged_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merged_customers_into ON merged_customers (merged_into);
