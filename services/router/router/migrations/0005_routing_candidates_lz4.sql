-- A routing decision's candidates are ~20 kB of JSON per assignment (every agent considered),
-- which PostgreSQL compresses on the way into TOAST. Its default, pglz, cost more CPU than the
-- rest of the assignment's writes together (the router benchmark at 500 assignments/s); lz4
-- compresses several times faster. Rows written before keep pglz and read as before. Servers
-- built without lz4 refuse the setting: they keep pglz rather than fail the migration.
DO $$
BEGIN
    ALTER TABLE routing_decisions ALTER COLUMN candidates SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server; routing candidates stay pglz';
END
$$;
