"""Signing of webhook deliveries (Stripe's scheme: a timestamp and an HMAC-SHA256 of
`timestamp.body`, so a receiver can refuse forgeries and replays) and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import timedelta

SIGNATURE_HEADER = "X-Feedback-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """The request's signature header is missing, malformed, wrong or too old."""


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={compute_signature(secret, timestamp, body)}"


def verify_signature(
    header: str, body: bytes, secret: str, now: int, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> None:
    """What a receiving integration does; raises SignatureError. Several v1 values are allowed
    so a sender may sign with an old and a new secret while secrets are rotated."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("signature header needs t= and v1=")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("signature timestamp outside the tolerance")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match")


def retry_delay(
    attempt: int,
    *,
    base: timedelta = timedelta(seconds=30),
    cap: timedelta = timedelta(hours=6),
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> timedelta:
    """Wait after failed attempt number `attempt` (1-based): base·2^(attempt-1), capped, with
    up to `jitter` (a share, e.g. 0.2) added so many failing deliveries do not retry in step."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    delay: timedelta = min(base * 2 ** min(attempt - 1, 30), cap)
    if jitter:
        delay += delay * jitter * (rng or random).random()
    return delay


def retry_schedule(
    max_attempts: int,
    *,
    base: timedelta = timedelta(seconds=30),
    cap: timedelta = timedelta(hours=6),
) -> list[timedelta]:
    """The waits between attempts 1..max_attempts, without jitter (for docs and tests)."""
    return [retry_delay(a, base=base, cap=cap) for a in range(1, max_attempts)]


def is_retryable_status(status: int) -> bool:
    # 4xx other than timeouts and rate limits means the receiver refused this request for good.
    return status >= 500 or status in (408, 425, 429)
