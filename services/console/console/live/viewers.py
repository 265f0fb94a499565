"""A signed-in user as the live rules see them (their agent's queues fetched from the router),
and whether their session still holds."""

from __future__ import annotations

import logging
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncEngine

from console.apis import Apis, UpstreamUnavailable
from console.db import live as db
from console.domain.live import Queue, Viewer, queues_served
from console.domain.users import User

log = logging.getLogger(__name__)


def viewer_of(user: User, queues: frozenset[str] = frozenset()) -> Viewer:
    agent = None if user.is_supervisor else (user.agent_id or user.id)
    return Viewer(
        user_id=user.id,
        subject=user.subject,
        supervisor=user.is_supervisor,
        agent_id=agent,
        queues=queues if agent is not None else frozenset(),
    )


async def agent_queues(apis: Apis, user: User) -> frozenset[str] | None:
    """The queues the user's agent serves (GET /v1/agents/{id} and GET /v1/queues, with the
    user's own token); None when the router did not say."""
    agent_id = user.agent_id or user.id
    try:
        agent = await apis.get(user, "router", f"/v1/agents/{quote(agent_id, safe='')}")
        queues = await apis.get(user, "router", "/v1/queues")
    except UpstreamUnavailable as exc:
        log.warning("live: the queues of %s unknown for now: %s", agent_id, exc)
        return None
    if agent.status_code != 200 or queues.status_code != 200:
        log.warning(
            "live: the queues of %s unknown for now: the router answered %d, %d",
            agent_id,
            agent.status_code,
            queues.status_code,
        )
        return None
    skills = agent.json().get("skills") or {}
    return queues_served(
        skills,
        [Queue(q["id"], frozenset(q.get("required_skills") or ())) for q in queues.json()],
    )


async def current_viewer(apis: Apis, user: User, previous: Viewer | None = None) -> Viewer:
    """The user's viewer now: an agent's queues fetched again (the previous ones kept if the
    router does not answer)."""
    if user.is_supervisor:
        return viewer_of(user)
    queues = await agent_queues(apis, user)
    if queues is None:
        queues = previous.queues if previous is not None else frozenset()
    return viewer_of(user, queues)


async def session_holds(engine: AsyncEngine, cookie: str, idle_s: float) -> bool:
    async with engine.connect() as conn:
        return await db.session_active(conn, cookie, idle_s=idle_s)
