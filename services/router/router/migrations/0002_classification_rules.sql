-- Classification rules as versioned documents, like the routing policy: a change is a new
-- version, in force on every replica within ROUTER_POLICY_CACHE_S, and each ticket's
-- classification records the version and the rules that decided it.
CREATE TABLE classification_rules (
    version     int PRIMARY KEY,
    rules       jsonb NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
