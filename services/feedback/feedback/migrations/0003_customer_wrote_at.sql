-- When the customer wrote the message that opened the ticket (ticket.opened's received_at;
-- its opened_at for events of a router that did not send it). The reply window of messaging
-- channels counts from the customer's last message: the opening could be days after it.
ALTER TABLE ticket_facts ADD COLUMN customer_wrote_at timestamptz;
