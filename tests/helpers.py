"""Small helpers for tests: wait for an asynchronous effect instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


async def wait_until(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll until predicate() is truthy; fails the test with a clear message at the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > end:
            pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)


# The development key pair's private half: the services under test use its public half (their
# default, accepted because tests run with CC_DEVELOPMENT=1).
DEV_PRIVATE_KEY_FILE = (
    Path(__file__).resolve().parents[1] / "deploy/local/dev-token-key.DEV-ONLY.pem"
)


@lru_cache(maxsize=1)
def dev_private_key() -> Ed25519PrivateKey:
    from ccshared.auth import load_private_key

    return load_private_key(str(DEV_PRIVATE_KEY_FILE))


def as_user(subject: str, role: str = "agent", *, ttl_s: float = 3600) -> dict[str, str]:
    """Headers of a UI user with a freshly signed token."""
    from datetime import timedelta

    from ccshared.auth import issue_token

    token = issue_token(dev_private_key(), subject, role, ttl=timedelta(seconds=ttl_s))  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def as_agent(agent_id: str) -> dict[str, str]:
    return as_user(agent_id, "agent")


def as_supervisor(user: str = "sup") -> dict[str, str]:
    return as_user(user, "supervisor")


def best_seconds(work: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` runs of `work`: the figure least disturbed by a busy machine.
    Tests compare it with a ceiling measured the same way in the same test (a ratio), never
    with a fixed number of seconds: machines differ by up to 4× from day to day."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best
