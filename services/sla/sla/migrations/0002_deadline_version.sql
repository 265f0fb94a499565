-- How many times the ticket's next deadline has been published (sla.deadline_changed carries
-- it as `version`): consumers keep the highest they have seen, so an event delivered late
-- never moves a deadline back.
ALTER TABLE sla_tickets ADD COLUMN deadline_version bigint NOT NULL DEFAULT 0;
