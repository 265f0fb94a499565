-- The router's view of each customer, for the UI's customer screen and search: built from
-- contact.received (intake owns customer identity; the router keeps what the contacts said):
-- the latest name given, every e-mail, phone and social handle seen, first and last contact,
-- how many contacts. A supervisor's merge marks a customer merged into another (its tickets
-- and identities move there; reads of it name the target).
CREATE EXTENSION IF NOT EXISTS pg_trgm;  -- trusted since PostgreSQL 13: a database owner may

CREATE TABLE customers (
    id                uuid PRIMARY KEY,
    display_name      text,
    name_at           timestamptz,                 -- when the displayed name was given
    first_contact_at  timestamptz NOT NULL,
    last_contact_at   timestamptz NOT NULL,
    contact_count     int NOT NULL DEFAULT 0,
    merged_into       uuid REFERENCES customers (id),
    merged_at         timestamptz,
    merged_by         text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Name search: a substring of three or more characters through trigrams (Chinese too: the
-- database's C.UTF-8 ctype makes CJK characters trigram letters), shorter ones as a prefix
-- (not partial: a partial index on merged_into IS NULL would look like a cheap way to read
-- every live customer, and the planner took it for substring searches).
CREATE INDEX customers_name_trgm ON customers USING gin (lower(display_name) gin_trgm_ops)
    WHERE merged_into IS NULL;
CREATE INDEX customers_name_prefix ON customers (lower(display_name) text_pattern_ops);
CREATE INDEX customers_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;

-- Each e-mail (lower-cased), phone (E.164, as intake normalises it) and social handle
-- (platform:handle) a customer's contacts gave. One value may appear under two customers: a
-- contact's hints are not all decisive in intake (its strongest known identity picks the
-- customer), so the pair is the key.
CREATE TABLE customer_identities (
    kind           text NOT NULL CHECK (kind IN ('email', 'phone', 'handle')),
    value          text NOT NULL,
    customer_id    uuid NOT NULL REFERENCES customers (id),
    first_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, value, customer_id)
);
CREATE INDEX customer_identities_customer ON customer_identities (customer_id);

-- Customers of tickets opened before: their name as the tickets stored it, times and counts
-- from the tickets' contacts (their identities were never kept: they fill in as they write).
INSERT INTO customers (id, display_name, name_at, first_contact_at, last_contact_at,
                       contact_count)
SELECT t.customer_id,
       (array_agg(t.customer_name ORDER BY t.last_contact_at DESC)
            FILTER (WHERE t.customer_name IS NOT NULL))[1],
       max(t.last_contact_at) FILTER (WHERE t.customer_name IS NOT NULL),
       min(t.opened_at), max(t.last_contact_at),
       coalesce(sum((SELECT count(*) FROM ticket_contacts c WHERE c.ticket_id = t.id)), 0)
FROM tickets t
GROUP BY t.customer_id;
