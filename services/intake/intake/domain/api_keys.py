"""Integration API keys, their rate limits and the throttling of failed attempts: pure logic,
no storage.

A key reads `cck_<prefix>_<secret>`. The prefix identifies the key (it is shown in listings and
logs); only a SHA-256 of the secret is stored. The secret is 32 random bytes, so a fast hash is
enough: there is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
from dataclasses import dataclass

KEY_SCHEME = "cck"
_PREFIX_BYTES = 6
_SECRET_BYTES = 32


class MalformedApiKey(ValueError):
    """The text is not shaped like one of our keys."""


@dataclass(frozen=True)
class IssuedKey:
    prefix: str
    secret_hash: bytes
    plaintext: str  # shown once to the operator, never stored


def issue_key() -> IssuedKey:
    prefix = secrets.token_hex(_PREFIX_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return IssuedKey(prefix, hash_secret(secret), f"{KEY_SCHEME}_{prefix}_{secret}")


def split_key(plaintext: str) -> tuple[str, str]:
    """(prefix, secret) of a presented key."""
    scheme, sep, rest = plaintext.partition("_")
    prefix, sep2, secret = rest.partition("_")
    if (
        scheme != KEY_SCHEME
        or not sep
        or not sep2
        or len(prefix) != 2 * _PREFIX_BYTES
        or not secret
        or len(plaintext) > 200
    ):
        raise MalformedApiKey("not an API key of this service")
    return prefix, secret


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


MAX_LEASE_BLOCK = 1_000_000


def lease_block(rate_per_s: float, burst: int, lease_s: float) -> int:
    """How many tokens a process leases from a key's shared bucket at a time: the key's rate
    over `lease_s` (one lease per `lease_s` at full rate), at least one, at most the burst
    (and `MAX_LEASE_BLOCK`). Each process may hold one unused block, so replicas together
    exceed the key's limit by at most one block each."""
    return max(1, min(burst, MAX_LEASE_BLOCK, math.ceil(rate_per_s * lease_s)))


@dataclass
class LeasedTokens:
    """A process's share of a key's bucket: tokens leased and not used yet, and, when the
    shared bucket was found empty, when it is worth asking again."""

    tokens: int = 0
    denied_until: float = 0.0

    def take(self) -> bool:
        if self.tokens > 0:
            self.tokens -= 1
            return True
        return False

    def granted(self, tokens: int, remaining: float, rate_per_s: float, now: float) -> None:
        """Record a lease: `tokens` granted, `remaining` left in the shared bucket."""
        self.tokens += tokens
        if tokens == 0:
            wait = (1.0 - remaining) / rate_per_s if rate_per_s > 0 else 60.0
            self.denied_until = now + max(wait, 0.001)


def throttled_address(address: str) -> str:
    """The unit failed attempts are counted per: an IPv4 address, or an IPv6 address's /64
    (one host is commonly given a whole /64, so counting single IPv6 addresses would let it
    try 2**64 times as often)."""
    if ":" not in address:
        return address
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network((parsed.exploded.split("%")[0], 64), strict=False))


class LookupBudget:
    """A token bucket of `rate_per_s` (at most `burst` saved up): how many keys this process
    looks up for addresses that are shut out. Their valid keys must still get in, so their
    keys are verified; but an unknown prefix costs a query, which a shut-out address must
    not get for free."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at = 0.0

    def take(self, now: float) -> bool:
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FailedAttempts:
    """Failed key attempts per client address, counted in windows of `window_s` that begin
    with an address's first failure; `limit` failures in a window shut the address out (its
    missing, malformed, unknown or wrong keys are refused with 429 rather than 401, without a
    query; a key that verifies still gets in) until the window ends. Memory is bounded: past
    windows are forgotten; beyond `max_addresses` the counts start over and the older half of
    the blocks is dropped (the shared count in PostgreSQL blocks such an address again on its
    next failure)."""

    def __init__(self, limit: int, window_s: float, max_addresses: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._counts: dict[str, tuple[float, int]] = {}  # address -> (window end, failures)
        self._blocked: dict[str, float] = {}  # address -> until

    @property
    def any_blocked(self) -> bool:
        return bool(self._blocked)

    def retry_after(self, address: str, now: float) -> float:
        """0.0 when the address may try now, else the seconds until it may."""
        until = self._blocked.get(address)
        if until is None:
            return 0.0
        if now >= until:
            del self._blocked[address]
            return 0.0
        return until - now

    def record(self, address: str, now: float) -> None:
        end, failures = self._counts.get(address, (0.0, 0))
        if now >= end:
            end, failures = now + self.window_s, 0
        failures += 1
        if len(self._counts) >= self.max_addresses and address not in self._counts:
            self._forget_past(now)
        self._counts[address] = (end, failures)
        if failures >= self.limit:
            self.block(address, end, now)

    def block(self, address: str, until: float, now: float) -> None:
        if len(self._blocked) >= self.max_addresses and address not in self._blocked:
            self._blocked = {a: u for a, u in self._blocked.items() if u > now}
            if len(self._blocked) >= self.max_addresses:  # keep the newer half
                newest = list(self._blocked.items())[len(self._blocked) // 2 :]
                self._blocked = dict(newest)
        self._blocked[address] = max(until, self._blocked.get(address, 0.0))

    def _forget_past(self, now: float) -> None:
        self._counts = {a: c for a, c in self._counts.items() if c[0] > now}
        if len(self._counts) >= self.max_addresses:
            self._counts.clear()
