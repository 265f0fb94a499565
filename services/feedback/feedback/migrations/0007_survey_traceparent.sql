-- The trace context of the ticket's resolution that scheduled the survey (W3C traceparent;
-- NULL while tracing is off): the scheduler's sending continues it (ccshared.tracing
-- `continuing`), so the survey is part of its contact's trace.
ALTER TABLE surveys ADD COLUMN traceparent text;
