-- Intake owns: the integrations' API keys, customers and their identities, and every contact.

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    prefix        text NOT NULL UNIQUE,          -- public part of the key, shown in listings
    secret_hash   bytea NOT NULL,                -- sha256 of the secret part; the key is not kept
    channels      text[] NOT NULL,
    rate_per_s    double precision NOT NULL,
    burst         int NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE customers (
    id          uuid PRIMARY KEY,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per normalized hint: e-mail, phone (E.164), social handle, account id, chat visitor.
CREATE TABLE customer_identities (
    kind         text NOT NULL,
    value        text NOT NULL,
    customer_id  uuid NOT NULL REFERENCES customers (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
CREATE INDEX customer_identities_customer ON customer_identities (customer_id);

CREATE TABLE contacts (
    id               uuid PRIMARY KEY,
    customer_id      uuid NOT NULL REFERENCES customers (id),
    channel          text NOT NULL,
    external_id      text NOT NULL,
    api_key_id       uuid REFERENCES api_keys (id),
    idempotency_key  text,
    request_hash     bytea NOT NULL,               -- of the normalized contact: same key, same body?
    received_at      timestamptz NOT NULL,
    accepted_at      timestamptz NOT NULL DEFAULT now(),
    body             json NOT NULL,                -- the normalized contact as accepted (kept as text)
    ticket_id        uuid,                         -- set when the router has placed it
    UNIQUE (channel, external_id)
);
CREATE UNIQUE INDEX contacts_idempotency ON contacts (api_key_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX contacts_customer ON contacts (customer_id, received_at);
