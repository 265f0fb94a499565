-- The assigner reads, for every batch of waiting tickets, which agents declined them or let
-- their offers time out: without this it scanned every offer ever made.
CREATE INDEX offers_ticket ON offers (ticket_id);
