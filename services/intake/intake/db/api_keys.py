"""Storage of integration API keys, and the verified-key cache the request path reads."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from intake.domain.api_keys import TokenBucket, issue_key, secret_matches, split_key
from intake.domain.normalize import phone_region_code


@dataclass
class ApiKey:
    id: uuid.UUID
    name: str
    # The integration the key belongs to: its first key's id, shared by every key created
    # under the same name. Contacts are read and deduplicated per integration.
    integration_id: uuid.UUID
    prefix: str
    channels: frozenset[str]
    rate_per_s: float
    burst: int
    created_at: datetime
    revoked_at: datetime | None
    secret_hash: bytes = field(repr=False)
    # Where the integration's phone numbers without a country code are read (None: the
    # service's default region).
    phone_region: str | None = None


def _from_row(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        integration_id=row["integration_id"],
        prefix=row["prefix"],
        channels=frozenset(row["channels"]),
        rate_per_s=row["rate_per_s"],
        burst=row["burst"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        secret_hash=bytes(row["secret_hash"]),
        phone_region=row["phone_region"],
    )


async def create_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    name: str,
    channels: list[str],
    rate_per_s: float,
    burst: int,
    phone_region: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns it and its plaintext, which is never shown again. A key named
    like an existing one (active or revoked) joins that one's integration: that is how a key is
    rotated without losing its contacts. `phone_region` must be a region code with phone
    numbers (`phone_region_code`)."""
    if phone_region is not None:
        phone_region = phone_region_code(phone_region)
    issued = issue_key()
    key_id = uuid.uuid4()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (id, name, prefix, secret_hash, channels, rate_per_s, burst, "
        "integration_id, phone_region) VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce("
        "(SELECT integration_id FROM api_keys WHERE name = $2 ORDER BY created_at LIMIT 1), $1)"
        ", $8) RETURNING *",
        key_id,
        name,
        issued.prefix,
        issued.secret_hash,
        sorted(set(channels)),
        rate_per_s,
        burst,
        phone_region,
    )
    assert row is not None
    return _from_row(row), issued.plaintext


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, prefix: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    return bool(status.endswith(" 1"))


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[ApiKey]:
    return [_from_row(r) for r in await conn.fetch("SELECT * FROM api_keys ORDER BY created_at")]


class ApiKeyVerifier:
    """Checks presented keys; remembers answers for `ttl_s` so the hot path rarely queries.

    A revoked key keeps working on a process for at most `ttl_s` after the revocation.
    """

    def __init__(self, pool: asyncpg.Pool, *, ttl_s: float, workers: int = 1) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self.workers = workers
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._buckets: dict[uuid.UUID, TokenBucket] = {}

    async def verify(self, presented: str) -> ApiKey | None:
        """The active key for this text, or None (unknown, malformed, revoked, wrong secret)."""
        try:
            prefix, secret = split_key(presented)
        except ValueError:
            return None
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is None or now - cached[0] > self.ttl_s:
            row = await self.pool.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix)
            key = _from_row(row) if row is not None else None
            if key is not None and key.revoked_at is not None:
                key = None
            if len(self._cache) > 10_000:  # unknown prefixes must not grow this without bound
                self._cache.clear()
            self._cache[prefix] = cached = (now, key)
        key = cached[1]
        if key is None or not secret_matches(secret, key.secret_hash):
            return None
        return key

    def retry_after(self, key: ApiKey) -> float:
        """0 when the key may make a request now, else seconds until it may."""
        bucket = self._buckets.get(key.id)
        if bucket is None:
            # Each worker process enforces its share of the key's rate.
            bucket = TokenBucket(
                rate=key.rate_per_s / self.workers, burst=max(1.0, key.burst / self.workers)
            )
            self._buckets[key.id] = bucket
        return bucket.take()
