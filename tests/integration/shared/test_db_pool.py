"""The engine's pool tests a connection before use only when it has been idle a while
(`ccshared.db.ping_when_idle`): no extra round trips under load, and a connection that died
while idle is replaced before the caller sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import make_engine
from tests.conftest import pg_url


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@asynccontextmanager
async def _killed_while_idle(ping_after_idle_s: float) -> AsyncIterator[tuple[AsyncEngine, int]]:
    """An engine of one pooled connection whose backend the database ended while it sat idle
    in the pool (for 0.3 s); yields the engine and the ended backend's pid."""
    engine = make_engine(pg_url("postgres"), pool_size=1, ping_after_idle_s=ping_after_idle_s)
    admin = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        pid = await _backend_pid(engine)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.3)
        yield engine, pid
    finally:
        await admin.close()
        await engine.dispose()


async def test_a_connection_back_a_moment_ago_is_not_pinged_but_one_idle_long_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pings = 0
    original = AsyncAdapt_asyncpg_connection.ping

    def counting_ping(self: AsyncAdapt_asyncpg_connection) -> None:
        nonlocal pings
        pings += 1
        original(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counting_ping)
    engine = make_engine(pg_url("postgres"), pool_size=1, ping_after_idle_s=0.5)
    try:
        pid = await _backend_pid(engine)  # connects; goes back to the pool
        for _ in range(20):  # back and out again at once: never tested
            assert await _backend_pid(engine) == pid
        assert pings == 0
        await asyncio.sleep(0.6)  # idle past the threshold: tested once, then not again
        assert await _backend_pid(engine) == pid
        assert pings == 1
        assert await _backend_pid(engine) == pid
        assert pings == 1
    finally:
        await engine.dispose()


async def test_a_connection_that_died_while_idle_is_replaced_before_use() -> None:
    async with _killed_while_idle(0.2) as (engine, pid):
        # The first unit of work after the database dropped the connection succeeds, on a new
        # connection: the test at checkout found the dead one.
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT 41 + 1"))).scalar_one() == 42
            new_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert new_pid != pid


async def test_without_the_idle_test_the_dead_connection_fails_its_first_use() -> None:
    """The other side of the one above: what the test at checkout spares the caller (and so
    that the test above cannot pass for another reason)."""
    async with _killed_while_idle(3600) as (engine, pid):
        failed = False
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - whichever error the driver raises for it
            failed = True
        assert failed
        # The pool threw that connection away: the next unit of work gets a new one.
        assert await _backend_pid(engine) != pid
