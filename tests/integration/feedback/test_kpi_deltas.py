"""KPI rollup deltas: transactions that change ticket facts append their rollup deltas, so two
resolutions on the same day, queue, agent and channel never wait on one shared row; reads add
the pending deltas to the rollup rows; the scheduler folds them in, and the figures stay the
same before and after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from feedback.db.facts import FactChanges, fold_rollup_deltas
from feedback.db.kpis import kpi_sums
from feedback.domain.kpis import KpiSums
from tests.helpers import wait_until
from tests.integration.feedback.conftest import Feedback

GROUPINGS = ("day", "queue", "agent", "channel", "category")


@pytest.fixture
async def engine(
    feedback_factory: Callable[..., Awaitable[Feedback]], fresh_database: str
) -> AsyncIterator[AsyncEngine]:
    # The app migrates the database; its scheduler folds only every 10 minutes here.
    await feedback_factory(scheduler_interval_s=600)
    engine = create_async_engine(fresh_database)
    yield engine
    await engine.dispose()


async def _resolve(
    conn: AsyncConnection, ticket_id: uuid.UUID, resolved_at: datetime, **facts: Any
) -> None:
    changes = FactChanges(conn)
    values = {
        "opened_at": resolved_at - timedelta(minutes=42),
        "first_response_at": resolved_at - timedelta(minutes=30),
        "resolved_at": resolved_at,
        "channel": "email",
        "queue_id": "billing",
        "agent_id": "a1",
        "category": "billing",
    }
    await changes.update(ticket_id, values | facts)
    await changes.flush()


async def _all_sums(engine: AsyncEngine, day: date) -> dict[str, list[tuple[str, KpiSums]]]:
    async with engine.connect() as conn:
        return {g: await kpi_sums(conn, day, day, g) for g in GROUPINGS}


async def _pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM kpi_rollup_delta"))).scalar_one())


async def test_two_resolutions_on_the_same_rollup_rows_do_not_wait_for_each_other(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with engine.connect() as first:
        await first.begin()
        await _resolve(first, uuid.uuid4(), now)  # holds whatever it wrote, uncommitted
        async with engine.connect() as second:
            await second.begin()
            # Waiting on a row the first transaction holds fails the test, not hangs it.
            await second.execute(text("SET LOCAL lock_timeout = '2s'"))
            await _resolve(second, uuid.uuid4(), now)
            await second.commit()
        await first.commit()

    sums = await _all_sums(engine, now.date())
    assert [(g, s.tickets) for g, s in sums["queue"]] == [("billing", 2)]
    assert [(g, s.tickets) for g, s in sums["day"]] == [(now.date().isoformat(), 2)]


async def test_folding_the_deltas_changes_no_figure(engine: AsyncEngine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    reopened = uuid.uuid4()
    async with engine.begin() as conn:
        await _resolve(conn, reopened, now - timedelta(hours=2), agent_id="a2")
        for n in range(6):
            await _resolve(
                conn,
                uuid.uuid4(),
                now - timedelta(minutes=n),
                queue_id=("billing", "tech")[n % 2],
                category=("billing", "complaint", "technical")[n % 3],
                channel=("email", "phone")[n % 2],
            )
    async with engine.begin() as conn:  # reopened: its contribution moves to its new facts
        await _resolve(conn, reopened, now, agent_id="a3", queue_id="tech", reopened=True)
    async with engine.begin() as conn:  # nothing is left of a3's row but zeros afterwards
        await _resolve(conn, reopened, now, agent_id="a4", queue_id="tech", reopened=True)

    before = await _all_sums(engine, now.date())
    assert await _pending(engine) > 0

    async with engine.begin() as conn:
        folded = await fold_rollup_deltas(conn, limit=3)  # in batches
    assert folded == 3
    assert await _all_sums(engine, now.date()) == before
    async with engine.begin() as conn:
        while await fold_rollup_deltas(conn, limit=3):
            pass
    assert await _pending(engine) == 0

    after = await _all_sums(engine, now.date())
    assert after == before
    assert {g for g, _ in after["agent"]} == {"a1", "a2", "a3", "a4"}
    assert dict(after["agent"])["a3"].tickets == 0
    assert dict(after["agent"])["a4"].tickets == 1
    assert sum(s.tickets for _, s in after["queue"]) == 7
    assert sum(sum(s.res_hist) for _, s in after["channel"]) == 7


async def test_the_scheduler_folds_pending_deltas(
    feedback_factory: Callable[..., Awaitable[Feedback]], fresh_database: str
) -> None:
    feedback = await feedback_factory()
    engine = create_async_engine(fresh_database)
    try:
        async with engine.begin() as conn:
            await _resolve(conn, uuid.uuid4(), datetime.now(UTC))
        await feedback.scheduler_rounds(2)

        async def folded() -> bool:
            return await _pending(engine) == 0

        await wait_until(folded, timeout=30)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT count(*) FROM kpi_rollup"))).scalar()
        assert rows == 5  # all, queue, agent, channel, category
    finally:
        await engine.dispose()
