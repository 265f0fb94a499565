-- Agent status with a reason and since when (missed_offer, wrap_up, ...), wrap-up after
-- resolve (the queue's seconds), and every status an agent has been in, for occupancy reports.

ALTER TABLE agents
    ADD COLUMN status_reason  text,
    ADD COLUMN status_since   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN wrap_up_until  timestamptz;                 -- back to available then

ALTER TABLE queues ADD COLUMN wrap_up_s int NOT NULL DEFAULT 0;  -- 0: no wrap-up

CREATE TABLE agent_status_history (
    id        bigserial PRIMARY KEY,
    agent_id  text NOT NULL REFERENCES agents (id),
    status    text NOT NULL,
    reason    text,
    since     timestamptz NOT NULL,
    actor     text NOT NULL
);
CREATE INDEX agent_status_history_agent ON agent_status_history (agent_id, since);
-- The housekeeping that ends wrap-ups looks only at agents in wrap-up.
CREATE INDEX agents_wrap_up ON agents (wrap_up_until) WHERE status = 'wrap_up';
