-- KPI p90s are computed exactly from the facts of the tickets resolved in the asked range; this
-- index lets that read only those tickets (index-only, once vacuumed).
CREATE INDEX ticket_facts_resolved ON ticket_facts (resolved_at)
    INCLUDE (opened_at, first_response_at, queue_id, agent_id, channel, category);
