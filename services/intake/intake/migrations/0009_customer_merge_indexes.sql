-- migrate: no-transaction
-- The writer's probe ("is this customer merged?") reads customers_merged, a small partial
-- index, not the table; customers_merged_into finds the customers merged into one. Built without
-- blocking writes to customers (issue 15: indexes on existing tables are built CONCURRENTLY).
-- Each statement may run again after a failure: an interrupted concurrent build leaves an
-- invalid index, dropped first. On a database where 0007 still built them, they are rebuilt
-- once, concurrently (the probe falls back to the primary key meanwhile).

DROP INDEX CONCURRENTLY IF EXISTS customers_merged;
CREATE INDEX CONCURRENTLY customers_merged ON customers (id) WHERE merged_into IS NOT NULL;

DROP INDEX CONCURRENTLY IF EXISTS customers_merged_into;
CREATE INDEX CONCURRENTLY customers_merged_into ON customers (merged_into)
    WHERE merged_into IS NOT NULL;
