"""Integration API keys and their rate limits: pure logic, no storage.

A key reads `cck_<prefix>_<secret>`. The prefix identifies the key (it is shown in listings and
logs); only a SHA-256 of the secret is stored. The secret is 32 random bytes, so a fast hash is
enough: there is nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

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


@dataclass
class TokenBucket:
    """`rate` tokens per second up to `burst`; each request takes one."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float | None = None) -> float:
        """0.0 when the request may pass, else the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else float("inf")
