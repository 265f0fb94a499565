-- Notifications per recipient (a user id: the token subject of an agent or a supervisor),
-- read or unread; and who a queue's supervisors and managers are (escalations notify them).
CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    recipient   text NOT NULL,
    kind        text NOT NULL,   -- escalation | mention | new_offer | missed_offer | follow_up | delivery_failed
    ticket_id   uuid,
    text        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    read_at     timestamptz
);
CREATE INDEX notifications_recipient ON notifications (recipient, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (recipient, created_at DESC, id DESC)
    WHERE read_at IS NULL;

ALTER TABLE queues
    ADD COLUMN supervisors  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN managers     text[] NOT NULL DEFAULT '{}';

-- Supervisors' and managers' own choice to get their notifications by e-mail too.
CREATE TABLE notification_settings (
    user_id       text PRIMARY KEY,          -- the token subject
    email         text,
    email_opt_in  boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
