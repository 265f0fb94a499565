-- The feedback database: surveys and answers, webhook subscriptions and their delivery record,
-- key accounts and their call-backs, the ticket facts copied from other services' events, and
-- the KPI rollups kept from those facts. (The outbox and processed_events come from ccshared.)

-- One row per ticket, copied from router.tickets, sla.events and intake.contacts, plus the
-- survey outcome; a ticket's KPI contribution is a pure function of this row.
CREATE TABLE ticket_facts (
    ticket_id            uuid PRIMARY KEY,
    customer_id          uuid,
    channel              text,
    queue_id             text,
    agent_id             text,
    category             text,
    language             text,
    resolution_code      text,
    close_reason         text,
    opened_at            timestamptz,
    first_response_at    timestamptz,
    resolved_at          timestamptz,
    reopened             boolean NOT NULL DEFAULT false,
    recontacted          boolean NOT NULL DEFAULT false,
    -- metric -> 'met' | 'breached'; a breach is never undone by a later 'met'.
    sla_outcomes         jsonb NOT NULL DEFAULT '{}'::jsonb,
    escalated            boolean NOT NULL DEFAULT false,
    survey_sent          boolean NOT NULL DEFAULT false,
    answered             boolean NOT NULL DEFAULT false,
    csat                 smallint,
    nps                  smallint,
    solved_first_contact boolean,
    praised              boolean NOT NULL DEFAULT false,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- Observed FCR: a new contact marks the customer's tickets resolved shortly before it.
CREATE INDEX ticket_facts_customer_resolved ON ticket_facts (customer_id, resolved_at);

-- Contacts seen on intake.contacts: the reply window of messaging channels and observed FCR.
CREATE TABLE customer_contacts (
    contact_id  uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    channel     text NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX customer_contacts_customer ON customer_contacts (customer_id, channel, received_at);

CREATE TABLE surveys (
    id                 uuid PRIMARY KEY,
    ticket_id          uuid NOT NULL UNIQUE,          -- at most one survey per ticket
    customer_id        uuid NOT NULL,
    channel            text NOT NULL,
    language           text NOT NULL,
    agent_id           text,
    status             text NOT NULL CHECK (status IN ('scheduled', 'sent', 'suppressed')),
    suppression_reason text,
    due_at             timestamptz,
    window_closes_at   timestamptz,
    sent_at            timestamptz,
    expires_at         timestamptz,
    reminder_due_at    timestamptz,
    reminded_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX surveys_due ON surveys (due_at) WHERE status = 'scheduled';
CREATE INDEX surveys_reminder_due ON surveys (reminder_due_at)
    WHERE status = 'sent' AND reminded_at IS NULL;
CREATE INDEX surveys_customer ON surveys (customer_id, due_at) WHERE status <> 'suppressed';

-- One answer per survey; answering again within the window updates this row.
CREATE TABLE answers (
    survey_id             uuid PRIMARY KEY REFERENCES surveys (id),
    ticket_id             uuid NOT NULL,
    csat                  smallint CHECK (csat BETWEEN 1 AND 5),
    nps                   smallint CHECK (nps BETWEEN 0 AND 10),
    solved_first_contact  boolean,
    comment               text,
    revisions             int NOT NULL DEFAULT 1,
    first_answered_at     timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    followup_requested_at timestamptz,
    praise_recorded_at    timestamptz
);

CREATE TABLE webhook_subscriptions (
    id          uuid PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('phone', 'email', 'chat', 'social')),
    url         text NOT NULL,
    secret      text NOT NULL,
    description text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_channel ON webhook_subscriptions (channel) WHERE active;

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    survey_id       uuid NOT NULL REFERENCES surveys (id),
    event_id        uuid NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_status     int,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_survey ON webhook_deliveries (survey_id);

CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     int NOT NULL,
    at          timestamptz NOT NULL,
    status_code int,
    error       text,
    duration_ms int NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE key_accounts (
    customer_id             uuid PRIMARY KEY,
    name                    text NOT NULL,
    relationship_started_at timestamptz NOT NULL,
    channel                 text CHECK (channel IN ('phone', 'email', 'chat', 'social')),
    language                text,
    active                  boolean NOT NULL DEFAULT true,
    next_callback_at        timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX key_accounts_due ON key_accounts (next_callback_at) WHERE active;

CREATE TABLE key_account_callbacks (
    follow_up_id uuid PRIMARY KEY,
    customer_id  uuid NOT NULL REFERENCES key_accounts (customer_id) ON DELETE CASCADE,
    due_at       timestamptz NOT NULL,
    requested_at timestamptz NOT NULL,
    UNIQUE (customer_id, due_at)                       -- one follow-up per scheduled call-back
);

-- KPI rollups: per day and per value of one dimension ('all' holds the day's total, value '').
-- A query groups by one dimension at a time, so a 30-day range reads 30 × (distinct values)
-- rows whatever the ticket volume. Sums only: figures are computed from them when read.
-- Histograms count first-response / resolution times in buckets with upper bounds about 10%
-- apart (feedback.domain.kpis.BUCKET_BOUNDS_S); p90 is read from them.
CREATE TABLE kpi_rollup (
    dimension        text NOT NULL CHECK (dimension IN ('all', 'queue', 'agent', 'channel', 'category')),
    day              date NOT NULL,
    value            text NOT NULL,
    tickets          bigint NOT NULL DEFAULT 0,
    complaints       bigint NOT NULL DEFAULT 0,
    fcr_observed     bigint NOT NULL DEFAULT 0,
    frt_count        bigint NOT NULL DEFAULT 0,
    frt_sum_ms       bigint NOT NULL DEFAULT 0,
    res_count        bigint NOT NULL DEFAULT 0,
    res_sum_ms       bigint NOT NULL DEFAULT 0,
    sla_met          bigint NOT NULL DEFAULT 0,
    sla_breached     bigint NOT NULL DEFAULT 0,
    escalated        bigint NOT NULL DEFAULT 0,
    surveys_sent     bigint NOT NULL DEFAULT 0,
    surveys_answered bigint NOT NULL DEFAULT 0,
    csat_count       bigint NOT NULL DEFAULT 0,
    csat_satisfied   bigint NOT NULL DEFAULT 0,
    nps_count        bigint NOT NULL DEFAULT 0,
    nps_promoters    bigint NOT NULL DEFAULT 0,
    nps_detractors   bigint NOT NULL DEFAULT 0,
    fcr_answer_count bigint NOT NULL DEFAULT 0,
    fcr_answer_yes   bigint NOT NULL DEFAULT 0,
    praise           bigint NOT NULL DEFAULT 0,
    frt_hist         int[] NOT NULL,
    res_hist         int[] NOT NULL,
    PRIMARY KEY (dimension, day, value)
);

-- Element-wise sum of two count arrays (a NULL side counts as zeros), and its aggregate.
CREATE FUNCTION int_array_add(a int[], b int[]) RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
    FROM unnest(a, b) WITH ORDINALITY AS t (x, y, i)
$$;

CREATE AGGREGATE int_array_sum(int[]) (SFUNC = int_array_add, STYPE = int[], PARALLEL = SAFE);
