-- Baseline of the intake database. The shared outbox and processed_events tables come from
-- ccshared's own migrations; intake's contact and customer tables follow in later migrations.
SELECT 1;
