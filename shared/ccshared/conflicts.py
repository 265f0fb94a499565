"""Transactions that lost a race with another one: a deadlock (40P01) or a serialization
failure (40001). PostgreSQL rolled the transaction back whole, so doing it again is safe and
normally succeeds; a caller that cannot retry gets a 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
T = TypeVar("T")


def is_transient_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure, however the driver wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if state in TRANSIENT_SQLSTATES:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


async def in_transaction(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay_s: float = 0.02,
) -> T:
    """Run `work` in a transaction, again (after a short random pause) when it lost a race."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except Exception as exc:
            if attempt == attempts or not is_transient_conflict(exc):
                raise
            log.info("transaction lost a race (attempt %d of %d), retrying", attempt, attempts)
            await asyncio.sleep(random.uniform(0, base_delay_s * 2**attempt))
    raise AssertionError("unreachable")
