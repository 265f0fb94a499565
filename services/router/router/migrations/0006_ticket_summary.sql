-- What the UI lists show of a ticket without reading its contacts: the subject (or the first
-- line of the text) of its first contact, cut to 140 characters, and the customer's name as
-- that contact gave it. Written with the ticket's row when it opens (same statement); a later
-- contact fills the name if the first had none. Tickets opened before are filled from their
-- first contact (the name was never stored, so it stays empty for them).
ALTER TABLE tickets ADD COLUMN subject_line text, ADD COLUMN customer_name text;

UPDATE tickets t SET subject_line = left(first.line, 140)
FROM (
    SELECT DISTINCT ON (ticket_id) ticket_id,
           coalesce(nullif(btrim(subject), ''),
                    substring(btrim(coalesce(text, ''), E' \t\r\n') FROM '^[^\r\n]*')) AS line
    FROM ticket_contacts ORDER BY ticket_id, received_at
) first
WHERE first.ticket_id = t.id AND t.subject_line IS NULL;
