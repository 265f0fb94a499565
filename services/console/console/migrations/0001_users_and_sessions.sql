-- The console's users (agents and supervisors), their sign-in sessions and the failed sign-ins
-- that throttle guessing. Passwords are argon2id hashes (PHC strings); a session is known only
-- by the SHA-256 of its cookie, so a copy of this table signs nobody in.
CREATE TABLE users (
    id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role text NOT NULL CHECK (role IN ('agent', 'supervisor')),
    -- The router agent an agent user works as (the token's subject); null for supervisors.
    agent_id text CHECK ((role = 'agent') = (agent_id IS NOT NULL)),
    password_hash text NOT NULL,
    language text CHECK (language IN ('en', 'zh')),
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_agent_id ON users (agent_id) WHERE agent_id IS NOT NULL;

CREATE TABLE sessions (
    id_hash bytea PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    address text
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- One row per failed sign-in, by account and by client address; rows older than the throttle
-- window are deleted as they are read.
CREATE TABLE sign_in_failures (
    scope text NOT NULL CHECK (scope IN ('account', 'address')),
    key text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_key ON sign_in_failures (scope, key, at);
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
