-- A supervisor's merge in the router (customer.merged): the merged customer names the one it
-- became, its identities belong to that one, and the writer holds back (then re-resolves) a
-- contact it chose a merged customer for from a stale cache. Contacts keep the customer they
-- were written with.
ALTER TABLE customers ADD COLUMN merged_into uuid REFERENCES customers (id),
                      ADD COLUMN merged_at timestamptz;
-- The writer's probe ("is this customer merged?") reads this small index, not the table.
CREATE INDEX customers_merged ON customers (id) WHERE merged_into IS NOT NULL;
CREATE INDEX customers_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;
