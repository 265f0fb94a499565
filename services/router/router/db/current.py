"""The current version of a versioned configuration (routing policy, classification rules),
re-read at most every `ttl_s`: a change made through any replica applies here without a
restart, within that time (at once on the replica that made it, which invalidates)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")


class CurrentVersion(Generic[T]):
    def __init__(
        self,
        engine: AsyncEngine,
        ttl_s: float,
        load: Callable[[AsyncConnection], Awaitable[T]],
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._load = load
        self._value: T | None = None
        self._loaded_at = 0.0

    async def current(self) -> T:
        if self._value is None or time.monotonic() - self._loaded_at > self.ttl_s:
            async with self.engine.connect() as conn:
                self._value = await self._load(conn)
            self._loaded_at = time.monotonic()
        return self._value

    def invalidate(self) -> None:
        self._value = None
