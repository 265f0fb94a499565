-- Rate limits that hold across replicas, without a database round trip per request: each key
-- has one token bucket here, and each intake process leases tokens from it a block at a time
-- (`lease_api_key_tokens`, one call per block). Together the replicas never let more in than
-- the key's rate and burst, plus at most one unused block each.
CREATE TABLE api_key_tokens (
    api_key_id   uuid PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL
);

-- Takes up to `block_size` whole tokens from the key's bucket (refilled at the key's rate up to its
-- burst since the last lease). Returns what was granted, what is left, and the key's rate (for
-- a Retry-After when nothing was). A key's first lease starts from a full bucket.
CREATE FUNCTION lease_api_key_tokens(
    key_id uuid, block_size int, OUT granted int, OUT remaining double precision,
    OUT rate double precision
) LANGUAGE plpgsql AS $$
DECLARE
    bucket record;
    available double precision;
    now_at timestamptz;
BEGIN
    SELECT t.tokens, t.refilled_at, k.rate_per_s, k.burst INTO bucket
    FROM api_key_tokens t JOIN api_keys k ON k.id = t.api_key_id
    WHERE t.api_key_id = key_id FOR UPDATE OF t;
    IF NOT FOUND THEN
        INSERT INTO api_key_tokens (api_key_id, tokens, refilled_at)
        SELECT id, burst, clock_timestamp() FROM api_keys WHERE id = key_id
        ON CONFLICT DO NOTHING;
        SELECT t.tokens, t.refilled_at, k.rate_per_s, k.burst INTO bucket
        FROM api_key_tokens t JOIN api_keys k ON k.id = t.api_key_id
        WHERE t.api_key_id = key_id FOR UPDATE OF t;
        IF NOT FOUND THEN  -- no such key
            granted := 0; remaining := 0; rate := 0;
            RETURN;
        END IF;
    END IF;
    now_at := greatest(bucket.refilled_at, clock_timestamp());  -- read after the lock is held
    available := least(
        bucket.burst,
        bucket.tokens + bucket.rate_per_s * extract(epoch FROM now_at - bucket.refilled_at)
    );
    granted := least(block_size, floor(available))::int;
    remaining := available - granted;
    rate := bucket.rate_per_s;
    UPDATE api_key_tokens SET tokens = remaining, refilled_at = now_at WHERE api_key_id = key_id;
END
$$;

-- Failed key attempts per client address and fixed window (of the database's clock, so every
-- replica counts in the same window). Rows of past windows are deleted as new windows begin.
CREATE TABLE auth_failures (
    address       text NOT NULL,
    window_start  timestamptz NOT NULL,
    failures      int NOT NULL,
    PRIMARY KEY (address, window_start)
);
