-- The trace context of the contact that opened the ticket (W3C traceparent; NULL while tracing
-- is off): the events an agent's later actions publish continue that trace (ccshared.tracing
-- `continuing`), so one contact is one trace through its resolution and survey.
ALTER TABLE tickets ADD COLUMN traceparent text;
