"""Agents: reading them with their load, creating and changing them, their status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.auth import Principal
from ccshared.events.payloads import AgentStatus
from ccshared.problems import NotFound
from ccshared.user_auth import require_self_or_supervisor
from router.db import agents as db


async def _view(conn: AsyncConnection, agent_id: str) -> dict[str, Any]:
    found = await db.agent_view(conn, agent_id)
    if found is None:
        raise NotFound(f"No agent {agent_id}.")
    return found


async def list_agents(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [await _view(conn, agent_id) for agent_id in await db.agent_ids(conn)]


async def get_agent(engine: AsyncEngine, agent_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await _view(conn, agent_id)


async def put_agent(
    engine: AsyncEngine,
    agent_id: str,
    *,
    name: str,
    role: str | None,
    skills: dict[str, int],
    capacity: dict[str, int],
    nudge: Callable[[], None],
) -> dict[str, Any]:
    async with engine.begin() as conn:
        await db.upsert_agent(
            conn, agent_id, name=name, role=role, skills=skills, capacity=capacity
        )
        view = await _view(conn, agent_id)
    nudge()
    return view


async def set_status(
    engine: AsyncEngine,
    agent_id: str,
    status: AgentStatus,
    user: Principal,
    nudge: Callable[[], None],
    *,
    reason: str | None = None,
) -> dict[str, Any]:
    """`reason`: the user's own (away or offline; the API checks it is not one of the
    router's)."""
    require_self_or_supervisor(user, agent_id)
    async with engine.begin() as conn:
        changed = await db.change_status(
            conn, agent_id, status, reason=reason, actor=user.actor, at=datetime.now(UTC)
        )
        if changed is None:
            raise NotFound(f"No agent {agent_id}.")
        view = await _view(conn, agent_id)
    nudge()
    return view


async def status_history(
    engine: AsyncEngine,
    agent_id: str,
    user: Principal,
    *,
    since: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The agent's statuses, oldest first: for supervisors and the agent themself."""
    require_self_or_supervisor(user, agent_id)
    async with engine.connect() as conn:
        await _view(conn, agent_id)  # a 404 for no such agent
        return await db.status_history(conn, agent_id, since=since, limit=limit)
