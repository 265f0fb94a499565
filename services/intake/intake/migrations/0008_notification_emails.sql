-- Notifications by e-mail (the router's notification.email_requested: a supervisor or manager
-- who opted in): outbound messages of their own kind, `notification`, on the e-mail channel,
-- to the address in the payload (`to`), with no customer, no contact and no integration, and a
-- ticket only when the notification is about one.
ALTER TABLE outbound_messages
    ALTER COLUMN ticket_id DROP NOT NULL,
    ALTER COLUMN customer_id DROP NOT NULL;
