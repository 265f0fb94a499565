"""Small helpers for tests: wait for an asynchronous effect instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


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


# The router's default development secret (RouterSettings.auth_secret): tests sign with it.
DEV_AUTH_SECRET = b"local-dev-router-auth-secret-change-me"


def as_user(subject: str, role: str = "agent", *, ttl_s: float = 3600) -> dict[str, str]:
    """Headers of a UI user with a freshly signed token."""
    from datetime import timedelta

    from ccshared.auth import issue_token

    token = issue_token(DEV_AUTH_SECRET, subject, role, ttl=timedelta(seconds=ttl_s))  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def as_agent(agent_id: str) -> dict[str, str]:
    return as_user(agent_id, "agent")


def as_supervisor(user: str = "sup") -> dict[str, str]:
    return as_user(user, "supervisor")
