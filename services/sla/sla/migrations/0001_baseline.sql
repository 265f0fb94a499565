-- Baseline of the sla database. The shared outbox and processed_events tables come from
-- ccshared's own migrations; this service's tables arrive with the issue that builds it.
SELECT 1;
