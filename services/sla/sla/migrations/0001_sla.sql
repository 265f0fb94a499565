-- The SLA service owns: policies (versioned), business calendars, each ticket's clocks, the
-- pending timers that fire warnings, breaches and escalations, and the outcomes attainment
-- is computed from.

-- One row per policy version; a version's body never changes (a ticket keeps the version it
-- was matched with). `active` is per policy: deactivating sets it on every version.
CREATE TABLE sla_policies (
    id          text NOT NULL,
    version     int NOT NULL CHECK (version >= 1),
    body        jsonb NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, version)
);

CREATE TABLE sla_calendars (
    id          text PRIMARY KEY,
    body        jsonb NOT NULL,
    revision    int NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A ticket's matching attributes, its policy version and its clocks (serialized domain
-- SlaClock objects, timelines included). `next_deadline` is the earliest deadline of a running
-- clock, kept so the at-risk list is an index scan rather than a computation over all tickets.
CREATE TABLE sla_tickets (
    ticket_id       uuid PRIMARY KEY,
    priority        text NOT NULL,
    channel         text NOT NULL,
    category        text NOT NULL,
    queue_id        text,
    segment         text,
    policy_id       text,
    policy_version  int,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'closed')),
    agent_replied   boolean NOT NULL DEFAULT false,
    clocks          jsonb NOT NULL DEFAULT '{}'::jsonb,
    next_deadline   timestamptz,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sla_tickets_next_deadline ON sla_tickets (next_deadline)
    WHERE next_deadline IS NOT NULL;
CREATE INDEX sla_tickets_open_policy ON sla_tickets (policy_id) WHERE status = 'open';

-- Pending timers only: a timer that fires is deleted here and recorded in fired_timers in the
-- transaction that enqueues its event, so the due scan (ORDER BY due_at LIMIT n FOR UPDATE SKIP
-- LOCKED) never wades through history, and a key in fired_timers never fires again (a
-- recomputation re-inserts only keys that have not fired). `seq` orders a ticket's timers that
-- fall due together (warning, breach, levels). `shard` is the ticket's Kafka partition.
CREATE TABLE sla_timers (
    key        text PRIMARY KEY,
    ticket_id  uuid NOT NULL,
    shard      smallint NOT NULL,
    metric     text NOT NULL,
    cycle      int NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('warning', 'breach', 'escalation')),
    level      int NOT NULL,
    seq        int NOT NULL,
    due_at     timestamptz NOT NULL,
    payload    jsonb NOT NULL
);
CREATE INDEX sla_timers_due ON sla_timers (due_at, seq);
CREATE INDEX sla_timers_ticket ON sla_timers (ticket_id, due_at, seq);

CREATE TABLE fired_timers (
    key        text PRIMARY KEY,
    ticket_id  uuid NOT NULL,
    kind       text NOT NULL,
    level      int NOT NULL,
    due_at     timestamptz NOT NULL,
    fired_at   timestamptz NOT NULL DEFAULT now(),
    event_id   uuid NOT NULL
);
CREATE INDEX fired_timers_ticket ON fired_timers (ticket_id);

-- Settled clocks for attainment: met (fulfilled in time) or breached (the breach fired, or it
-- was fulfilled late). One row per ticket, metric and cycle; a breach is never turned into met.
CREATE TABLE sla_outcomes (
    ticket_id   uuid NOT NULL,
    metric      text NOT NULL,
    cycle       int NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('met', 'breached')),
    deadline    timestamptz NOT NULL,
    settled_at  timestamptz NOT NULL,
    queue_id    text,
    channel     text NOT NULL,
    priority    text NOT NULL,
    policy_id   text NOT NULL,
    PRIMARY KEY (ticket_id, metric, cycle)
);
CREATE INDEX sla_outcomes_settled ON sla_outcomes (settled_at);
