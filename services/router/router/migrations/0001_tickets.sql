-- The router owns tickets, their contacts and history, queues, agents, offers, routing
-- decisions and the routing policy.

CREATE TABLE queues (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    required_skills  text[] NOT NULL DEFAULT '{}',
    strategy         text NOT NULL DEFAULT 'longest_idle',
    offer_timeout_s  int NOT NULL DEFAULT 30,
    rr_cursor        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    role               text NOT NULL DEFAULT 'agent',      -- agent | supervisor
    skills             jsonb NOT NULL DEFAULT '{}',        -- skill -> level 1..5
    capacity           jsonb NOT NULL DEFAULT '{}',        -- channel -> concurrent tickets
    status             text NOT NULL DEFAULT 'offline',
    idle_since         timestamptz,
    last_assigned_at   timestamptz,
    assignments_total  int NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tickets (
    id                 uuid PRIMARY KEY,
    customer_id        uuid NOT NULL,
    channel            text NOT NULL,
    status             text NOT NULL,
    category           text NOT NULL,
    priority           text NOT NULL,
    priority_rank      int NOT NULL,                        -- 0 urgent .. 3 low, for ordering
    language           text,
    segment            text,
    queue_id           text REFERENCES queues (id),
    owner_agent_id     text REFERENCES agents (id),         -- first-contact owner, for good
    assignee_agent_id  text REFERENCES agents (id),         -- who holds it now
    classification     jsonb NOT NULL DEFAULT '{}',
    policy_version     int,
    policy_step        text,
    step_timeout_at    timestamptz,                         -- overflow to the next step then
    sla_deadline       timestamptz,
    follow_up_of       uuid,
    resolution_code    text,
    first_contact_resolution boolean,
    opened_at          timestamptz NOT NULL,
    queued_at          timestamptz,
    last_contact_at    timestamptz NOT NULL,
    first_response_at  timestamptz,
    resolved_at        timestamptz,
    closed_at          timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_waiting ON tickets (queue_id, priority_rank, queued_at) WHERE status = 'queued';
CREATE INDEX tickets_customer ON tickets (customer_id, last_contact_at DESC);
CREATE INDEX tickets_assignee ON tickets (assignee_agent_id) WHERE assignee_agent_id IS NOT NULL;
CREATE INDEX tickets_overflow ON tickets (step_timeout_at) WHERE status = 'queued';

CREATE TABLE ticket_contacts (
    contact_id   uuid PRIMARY KEY,
    ticket_id    uuid NOT NULL REFERENCES tickets (id),
    channel      text NOT NULL,
    received_at  timestamptz NOT NULL,
    subject      text,
    text         text
);
CREATE INDEX ticket_contacts_ticket ON ticket_contacts (ticket_id, received_at);

-- Where a ticket can be found by a later contact: email:<message-id>, chat:<session>, ...
CREATE TABLE thread_keys (
    key        text NOT NULL,
    ticket_id  uuid NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (key, ticket_id)
);

CREATE TABLE ticket_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id    uuid NOT NULL REFERENCES tickets (id),
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    from_status  text,
    to_status    text,
    reason       text,
    data         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ticket_history_ticket ON ticket_history (ticket_id, id);

CREATE TABLE offers (
    id            uuid PRIMARY KEY,
    ticket_id     uuid NOT NULL REFERENCES tickets (id),
    agent_id      text NOT NULL REFERENCES agents (id),
    status        text NOT NULL,   -- pending | accepted | declined | timed_out | rescinded
    offered_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    responded_at  timestamptz,
    reason        text,
    decision_id   uuid NOT NULL
);
-- At most one live offer per ticket: the database refuses a second.
CREATE UNIQUE INDEX offers_one_pending ON offers (ticket_id) WHERE status = 'pending';
CREATE INDEX offers_expiring ON offers (expires_at) WHERE status = 'pending';
CREATE INDEX offers_agent ON offers (agent_id, status);

CREATE TABLE routing_decisions (
    id               uuid PRIMARY KEY,
    ticket_id        uuid NOT NULL REFERENCES tickets (id),
    at               timestamptz NOT NULL,
    policy_version   int,
    policy_step      text,
    queue_id         text NOT NULL,
    strategy         text NOT NULL,
    chosen_agent_id  text,
    candidates       jsonb NOT NULL,
    tie_breaker      text
);
CREATE INDEX routing_decisions_ticket ON routing_decisions (ticket_id, at);

CREATE TABLE routing_policies (
    version     int PRIMARY KEY,
    steps       jsonb NOT NULL,    -- [{id, condition, queue_id, priority, timeout_s, overflow_only}]
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL
);

INSERT INTO queues (id, name, required_skills, strategy) VALUES
    ('frontline',   'Frontline service',  '{}',             'longest_idle'),
    ('complaints',  'Complaints',         '{complaints}',   'best_skill_match'),
    ('technical',   'Technical support',  '{technical}',    'least_loaded'),
    ('billing',     'Billing',            '{billing}',      'longest_idle'),
    ('vip',         'VIP care',           '{vip}',          'best_skill_match'),
    ('escalations', 'Escalations',        '{escalations}',  'best_skill_match');
