-- A supervisor's merge in the router (customer.merged): the merged customer names the one it
-- became, its identities belong to that one, and the writer holds back (then re-resolves) a
-- contact it chose a merged customer for from a stale cache. Contacts keep the customer they
-- were written with.
ALTER TABLE customers ADD COLUMN merged_into uuid REFERENCES customers (id),
                      ADD COLUMN merged_at timestamptz;
-- Its two indexes (customers_merged, customers_merged_into) are built CONCURRENTLY by 0009:
-- customers is an existing, large table. (This file built them with a plain CREATE INDEX, which
-- blocks writes to customers for the whole build, until 0009 took them over the same day; on a
-- database where that version ran, 0009 rebuilds them concurrently.)
