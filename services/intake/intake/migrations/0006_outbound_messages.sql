-- Intake delivers what the platform sends to customers (message.outbound): e-mail over SMTP,
-- chat, social and phone through each integration's outbound URL.

-- One row per outbound message, keyed by the router's message id (the same event consumed
-- twice is stored once). `attempts` counts attempts started: an attempt is marked before it is
-- sent, so after a crash it is never sent again under the same number (the receiver dedupes
-- the next attempt by the message id).
CREATE TABLE outbound_messages (
    id                   uuid PRIMARY KEY,
    ticket_id            uuid NOT NULL,
    customer_id          uuid NOT NULL,
    channel              text NOT NULL,
    kind                 text NOT NULL,
    reply_to_contact_id  uuid,
    integration_id       uuid,                 -- the integration of the customer's contact
    target               text,                 -- the address or URL of the last attempt
    payload              json NOT NULL,        -- the message.outbound payload as consumed
    state                text NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    attempts             int NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    reason               text,
    provider_message_id  text,                 -- the e-mail's Message-ID, or the integration's id
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbound_messages_due ON outbound_messages (next_attempt_at) WHERE state = 'queued';
CREATE INDEX outbound_messages_integration ON outbound_messages (integration_id);

-- Where an integration takes outbound messages (chat, social, phone) and the secret they are
-- signed with; `mail_from` is an e-mail integration's From address.
CREATE TABLE integration_outbound (
    integration_id  uuid PRIMARY KEY,
    url             text,
    signing_secret  text,
    mail_from       text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
