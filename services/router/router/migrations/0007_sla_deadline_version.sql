-- The SLA service publishes each ticket's next deadline (sla.deadline_changed) with a version
-- that grows by one per change of that ticket; the router keeps the highest it has applied, so
-- an older event delivered late (redelivery, a retry after a failed batch) never moves
-- `sla_deadline` back. Not indexed: the deadline is read with the waiting tickets of a queue,
-- and an unindexed column keeps its updates HOT.
-- `sla_deadline_metric` is the clock the deadline belongs to (first_response, next_response,
-- resolution), for the predicted-breach note on an offer.
ALTER TABLE tickets ADD COLUMN sla_deadline_version bigint NOT NULL DEFAULT 0,
    ADD COLUMN sla_deadline_metric text;
