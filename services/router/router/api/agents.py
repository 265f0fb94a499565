"""Agents: skills, capacity, status and current load; a supervisor creates and changes them,
an agent sets their own status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Nudge, Supervisor, User
from router.api.schemas import AgentIn, AgentOut, AgentStatusIn, AgentStatusOut
from router.handlers import agents

router = APIRouter(
    prefix="/v1", dependencies=[Depends(principal)], responses=AUTH_RESPONSES, tags=["agents"]
)


@router.get("/agents", response_model=list[AgentOut])
async def list_agents(engine: AsyncEngine = Engine) -> list[AgentOut]:
    return [AgentOut(**a) for a in await agents.list_agents(engine)]


@router.put(
    "/agents/{agent_id}",
    response_model=AgentOut,
    summary="Create or change an agent: roles/skills, levels, capacity per channel (supervisor)",
)
async def put_agent(
    agent_id: str,
    body: AgentIn,
    user: Principal = Supervisor,
    engine: AsyncEngine = Engine,
    nudge: Callable[[], None] = Nudge,
) -> AgentOut:
    return AgentOut(**await agents.put_agent(engine, agent_id, **body.model_dump(), nudge=nudge))


@router.get("/agents/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: str, engine: AsyncEngine = Engine) -> AgentOut:
    return AgentOut(**await agents.get_agent(engine, agent_id))


@router.put(
    "/agents/{agent_id}/status",
    response_model=AgentOut,
    summary="Available, busy, away or offline, away or offline with a reason of the user's "
    "(the agent or a supervisor); available agents get offers",
)
async def set_agent_status(
    agent_id: str,
    body: AgentStatusIn,
    user: Principal = User,
    engine: AsyncEngine = Engine,
    nudge: Callable[[], None] = Nudge,
) -> AgentOut:
    return AgentOut(
        **await agents.set_status(engine, agent_id, body.status, user, nudge, reason=body.reason)
    )


@router.get(
    "/agents/{agent_id}/status-history",
    response_model=list[AgentStatusOut],
    summary="The agent's statuses with reason and since when, oldest first, for occupancy "
    "reports (supervisors, and the agent themself)",
)
async def status_history(
    agent_id: str,
    since: datetime | None = Query(default=None, description="only statuses from then on"),
    limit: int = Query(default=500, ge=1, le=5000),
    user: Principal = User,
    engine: AsyncEngine = Engine,
) -> list[AgentStatusOut]:
    found = await agents.status_history(engine, agent_id, user, since=since, limit=limit)
    return [AgentStatusOut(**row) for row in found]
