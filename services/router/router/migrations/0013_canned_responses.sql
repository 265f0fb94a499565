-- Canned responses (macros): per queue and language, with placeholders the router fills in
-- ({customer_name}, {ticket_number}, {agent_name}) for the agent to edit before sending.
CREATE TABLE canned_responses (
    id          uuid PRIMARY KEY,
    queue_id    text NOT NULL REFERENCES queues (id),
    language    text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX canned_responses_queue ON canned_responses (queue_id, language, title);
