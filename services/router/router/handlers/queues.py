"""Queues: their depth, oldest wait and available agents; creating and changing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from router.db import queues as db


async def list_queues(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await db.queue_views(conn)


async def put_queue(
    engine: AsyncEngine,
    queue_id: str,
    *,
    name: str,
    required_skills: list[str],
    strategy: str,
    offer_timeout_s: int,
    wrap_up_s: int = 0,
    supervisors: list[str] | None = None,
    managers: list[str] | None = None,
    nudge: Callable[[], None],
) -> None:
    async with engine.begin() as conn:
        await db.upsert_queue(
            conn,
            queue_id,
            name=name,
            required_skills=required_skills,
            strategy=strategy,
            offer_timeout_s=offer_timeout_s,
            wrap_up_s=wrap_up_s,
            supervisors=supervisors,
            managers=managers,
        )
    nudge()
