-- Each ticket's conversation: the customer's contacts (ticket_contacts, now with who sent them
-- and their attachments' metadata) and the agents' replies and internal notes
-- (ticket_messages), one ordered list (`GET /v1/tickets/{id}/messages`).
ALTER TABLE ticket_contacts
    ADD COLUMN sender       jsonb,        -- name, email, phone, social_handle as intake gave them
    ADD COLUMN attachments  jsonb;        -- [{filename, content_type, size_bytes, url, ref}]

CREATE TABLE ticket_messages (
    id                   uuid PRIMARY KEY,
    ticket_id            uuid NOT NULL REFERENCES tickets (id),
    direction            text NOT NULL,        -- outbound | note
    kind                 text NOT NULL,        -- reply | callback_request | note
    author               text NOT NULL,        -- agent:<id> | supervisor:<id>
    channel              text NOT NULL,
    text                 text NOT NULL,
    canned_response_id   uuid,
    reply_to_contact_id  uuid,
    mentions             text[] NOT NULL DEFAULT '{}',
    -- Replies only: queued -> sent -> delivered/read | failed, as intake reports it.
    delivery_state       text,
    delivery_reason      text,
    delivery_at          timestamptz,
    provider_message_id  text,
    created_at           timestamptz NOT NULL
);
CREATE INDEX ticket_messages_ticket ON ticket_messages (ticket_id, created_at, id);
