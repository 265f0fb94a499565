"""Storage of integration API keys, and the verified-key cache the request path reads."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from intake.domain.api_keys import (
    FailedAttempts,
    LeasedTokens,
    LookupBudget,
    issue_key,
    lease_block,
    secret_matches,
    split_key,
    throttled_address,
)
from intake.domain.normalize import phone_region_code

log = logging.getLogger(__name__)


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


async def set_phone_region(
    conn: asyncpg.Connection | asyncpg.Pool, prefix: str, phone_region: str | None
) -> bool:
    """Set (None: clear) the region of a key's national phone numbers; False if no such key."""
    if phone_region is not None:
        phone_region = phone_region_code(phone_region)
    status = await conn.execute(
        "UPDATE api_keys SET phone_region = $2 WHERE prefix = $1", prefix, phone_region
    )
    return bool(status.endswith(" 1"))


async def key_by_prefix(conn: asyncpg.Connection | asyncpg.Pool, prefix: str) -> ApiKey | None:
    row = await conn.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix)
    return None if row is None else _from_row(row)


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[ApiKey]:
    return [_from_row(r) for r in await conn.fetch("SELECT * FROM api_keys ORDER BY created_at")]


class ApiKeyVerifier:
    """Checks presented keys; remembers answers for `ttl_s` so the hot path rarely queries.

    A revoked key keeps working on a process for at most `ttl_s` after the revocation. It also
    holds the two limits checked with every key: the key's rate (`rates`) and the failed
    attempts of each client address (`failures`).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_s: float,
        lease_s: float = 0.1,
        failure_limit: int = 20,
        failure_window_s: int = 60,
        shut_out_lookups_per_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self.rates = SharedRateLimiter(pool, lease_s=lease_s)
        self.failures = FailedAttemptThrottle(pool, limit=failure_limit, window_s=failure_window_s)
        self._shut_out_lookups = LookupBudget(
            shut_out_lookups_per_s, max(1, math.ceil(2 * shut_out_lookups_per_s))
        )

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

    async def verify_shut_out(self, presented: str | None) -> ApiKey | None:
        """`verify`, for a client address shut out by its failed attempts: its valid key still
        gets in, but what it costs is bounded. A malformed key, or a prefix known not to
        exist, is refused without a query; a prefix this process knows as a key is verified
        as usual (one query per `ttl_s` at most, and only for real keys); any other prefix is
        looked up within a process-wide budget (`LookupBudget`), beyond which it is refused
        without a query."""
        if not presented:
            return None
        try:
            prefix, _ = split_key(presented)
        except ValueError:
            return None
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is None or cached[1] is None:
            if cached is not None and now - cached[0] <= self.ttl_s:
                return None  # looked up lately and not found
            if not self._shut_out_lookups.take(now):
                return None
        return await self.verify(presented)


class SharedRateLimiter:
    """Each key's rate limit, shared by every process through its bucket in PostgreSQL.

    A process leases tokens a block at a time (`lease_block`: the key's rate over `lease_s`)
    with one call of `lease_api_key_tokens` (migration 0005) and spends them locally, so the
    hot path asks the database once per block, not per request; only one lease per key is in
    flight at a time. When the shared bucket is empty, the process answers 429 without asking
    again until a token can have been refilled. N processes together let in at most the key's
    burst plus its rate over time, plus one unused block each.
    """

    def __init__(self, pool: asyncpg.Pool, *, lease_s: float) -> None:
        self.pool = pool
        self.lease_s = lease_s
        self._leased: dict[uuid.UUID, LeasedTokens] = {}
        self._leasing: dict[uuid.UUID, asyncio.Future[None]] = {}

    def try_take(self, key: ApiKey) -> bool:
        """Spend a token already leased (no I/O): the hot path's usual answer."""
        leased = self._leased.get(key.id)
        return leased is not None and leased.take()

    async def retry_after(self, key: ApiKey) -> float:
        """0.0 when the key may make a request now (a token is spent), else seconds until it
        may. Raises the database's error when a lease could not be asked for."""
        leased = self._leased.setdefault(key.id, LeasedTokens())
        for _ in range(3):  # tokens a lease brought may go to requests that waited with us
            if leased.take():
                return 0.0
            now = time.monotonic()
            if now < leased.denied_until:
                return leased.denied_until - now
            leasing = self._leasing.get(key.id)
            if leasing is None:
                leasing = asyncio.ensure_future(self._lease(key, leased))
                self._leasing[key.id] = leasing
                leasing.add_done_callback(lambda _: self._leasing.pop(key.id, None))
            await asyncio.shield(leasing)
        return 1.0 / key.rate_per_s if key.rate_per_s > 0 else 1.0

    async def _lease(self, key: ApiKey, leased: LeasedTokens) -> None:
        block = lease_block(key.rate_per_s, key.burst, self.lease_s)
        row = await self.pool.fetchrow(
            "SELECT granted, remaining, rate FROM lease_api_key_tokens($1, $2)", key.id, block
        )
        if row is None or row["granted"] is None:
            leased.granted(0, 0.0, key.rate_per_s, time.monotonic())
        else:
            leased.granted(row["granted"], row["remaining"], row["rate"], time.monotonic())


# One statement per failed attempt (never on the accepted path): count it in the current
# window of the database's clock, and say how many there were and when the window ends.
_COUNT_FAILURE = """
INSERT INTO auth_failures (address, window_start, failures)
VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
ON CONFLICT (address, window_start) DO UPDATE SET failures = auth_failures.failures + 1
RETURNING failures,
          extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8 AS left_s
"""


class FailedAttemptThrottle:
    """Throttles repeated failed key attempts (401s) per client address.

    Counted in this process's memory (`FailedAttempts`: what it decides with when PostgreSQL
    is unreachable) and in PostgreSQL (`auth_failures`, one upsert per failure), so failures
    spread over replicas add up: a replica learns that an address is over the limit with that
    address's next failure on it. A shut-out address is refused from memory, before its key is
    even looked at, so it costs no query until its window ends (but for a key it may verify:
    `ApiKeyVerifier.verify_shut_out`). IPv6 addresses are counted per /64.
    """

    def __init__(self, pool: asyncpg.Pool, *, limit: int, window_s: int) -> None:
        self.pool = pool
        self.limit = limit
        self.window_s = window_s
        self._local = FailedAttempts(limit, window_s)
        self._next_cleanup = 0.0

    def retry_after(self, address: str | None) -> float:
        if address is None or not self._local.any_blocked:  # the usual case: one check
            return 0.0
        return self._local.retry_after(throttled_address(address), time.monotonic())

    async def record(self, address: str | None) -> None:
        if address is None:
            return
        address = throttled_address(address)  # an IPv6 address counts for its /64
        now = time.monotonic()
        self._local.record(address, now)
        try:
            row = await self.pool.fetchrow(_COUNT_FAILURE, address, self.window_s)
            if now >= self._next_cleanup:
                self._next_cleanup = now + self.window_s
                await self.pool.execute(
                    "DELETE FROM auth_failures "
                    "WHERE window_start < now() - make_interval(secs => $1)",
                    self.window_s,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.info("failed key attempts counted in this process only: %r", exc)
            return
        if row is not None and row["failures"] >= self.limit:
            self._local.block(address, now + max(0.0, row["left_s"]), now)
