-- Agents' and supervisors' corrections of a ticket's category and priority: the history of
-- each change, and the labels the classifier is retrained on (`make train`). The text is the
-- first contact's subject and text as the model saw it, copied so a label stays whole.
CREATE TABLE classification_corrections (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id          uuid NOT NULL REFERENCES tickets (id),
    text               text NOT NULL,
    category           text NOT NULL,
    priority           text NOT NULL,
    previous_category  text NOT NULL,
    previous_priority  text NOT NULL,
    model_version      text,
    corrected_by       text NOT NULL,
    reason             text,
    corrected_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX classification_corrections_ticket ON classification_corrections (ticket_id, id);
