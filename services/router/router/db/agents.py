"""Agent rows: reading them with their load, creating and changing them, and what an
assignment round reads of them (the roster; the chosen agents locked, with their load and the
tickets they declined)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events import new_event
from ccshared.events.payloads import Channel
from ccshared.outbox import enqueue
from router.domain.assignment import Agent, AgentStatus, status_changed

HELD = ("assigned", "in_progress", "pending_customer")  # statuses that occupy an agent
_AGENT_FIELDS = "id, skills, capacity, status, idle_since, last_assigned_at, assignments_total"


def _obj(value: Any) -> dict[str, Any]:
    return orjson.loads(value) if isinstance(value, str | bytes) else dict(value or {})


def agent_from_row(row: Any, load: dict[str, int]) -> Agent:
    return Agent(
        id=row.id,
        skills=_obj(row.skills),
        status=row.status,
        capacity=cast("dict[Channel, int]", _obj(row.capacity)),
        load=cast("dict[Channel, int]", load),
        last_assigned_at=row.last_assigned_at,
        idle_since=row.idle_since,
        assignments_total=row.assignments_total,
    )


async def agent_loads(
    conn: AsyncConnection, agent_ids: str | list[str] | None = None
) -> dict[str, dict[str, int]]:
    """agent → channel → tickets it holds now; of every agent, or of the ones given."""
    ids = [agent_ids] if isinstance(agent_ids, str) else agent_ids
    rows = await conn.execute(
        text(
            "SELECT assignee_agent_id AS agent, channel, count(*) AS n FROM tickets "
            "WHERE assignee_agent_id IS NOT NULL AND status = ANY(:held) "
            "AND (CAST(:ids AS text[]) IS NULL OR assignee_agent_id = ANY(CAST(:ids AS text[]))) "
            "GROUP BY 1, 2"
        ),
        {"held": list(HELD), "ids": ids},
    )
    loads: dict[str, dict[str, int]] = {}
    for r in rows:
        loads.setdefault(r.agent, {})[r.channel] = r.n
    return loads


async def agent_view(conn: AsyncConnection, agent_id: str) -> dict[str, Any] | None:
    """The agent as the API shows it, with its load; None if there is none."""
    row = (
        await conn.execute(
            text(
                "SELECT id, name, role, skills, capacity, status, status_reason, status_since, "
                "wrap_up_until, idle_since, last_assigned_at, assignments_total "
                "FROM agents WHERE id = :id"
            ),
            {"id": agent_id},
        )
    ).first()
    if row is None:
        return None
    load = (await agent_loads(conn, agent_id)).get(agent_id, {})
    return {
        **row._mapping,
        "skills": _obj(row.skills),
        "capacity": _obj(row.capacity),
        "load": load,
    }


async def agent_ids(conn: AsyncConnection) -> list[str]:
    return [r.id for r in await conn.execute(text("SELECT id FROM agents ORDER BY id"))]


async def upsert_agent(
    conn: AsyncConnection,
    agent_id: str,
    *,
    name: str,
    role: str | None,
    skills: dict[str, int],
    capacity: dict[str, int],
) -> None:
    await conn.execute(
        text(
            "INSERT INTO agents (id, name, role, skills, capacity) VALUES (:id, :name, :role, "
            "CAST(:skills AS jsonb), CAST(:capacity AS jsonb)) ON CONFLICT (id) DO UPDATE SET "
            "name = EXCLUDED.name, role = EXCLUDED.role, skills = EXCLUDED.skills, "
            "capacity = EXCLUDED.capacity, updated_at = now()"
        ),
        {
            "id": agent_id,
            "name": name,
            "role": role,
            "skills": orjson.dumps(skills).decode(),
            "capacity": orjson.dumps(capacity).decode(),
        },
    )


# The agent locked; the change and its history row written only if the status or its reason
# changes (and, given `only_from`, only from one of those statuses). Returns the status before.
_CHANGE_STATUS = text(
    "WITH old AS (SELECT id, status, status_reason FROM agents WHERE id = :id "
    "  FOR NO KEY UPDATE), "
    "upd AS (UPDATE agents a SET status = CAST(:s AS text), status_reason = CAST(:r AS text), "
    "  status_since = :at, wrap_up_until = CAST(:until AS timestamptz), "
    "  idle_since = CASE WHEN CAST(:s AS text) = 'available' AND old.status <> 'available' "
    "    THEN :at ELSE a.idle_since END, updated_at = now() "
    "  FROM old WHERE a.id = old.id "
    "  AND (old.status <> CAST(:s AS text) OR old.status_reason IS DISTINCT FROM CAST(:r AS text)) "
    "  AND (CAST(:only AS text[]) IS NULL OR old.status = ANY(CAST(:only AS text[]))) "
    "  RETURNING a.id), "
    "hist AS (INSERT INTO agent_status_history (agent_id, status, reason, since, actor) "
    "  SELECT id, CAST(:s AS text), CAST(:r AS text), :at, :actor FROM upd) "
    "SELECT old.status, EXISTS (SELECT 1 FROM upd) AS changed FROM old"
)


async def change_status(
    conn: AsyncConnection,
    agent_id: str,
    status: AgentStatus,
    *,
    reason: str | None,
    actor: str,
    at: datetime,
    ticket_id: uuid.UUID | None = None,
    until: datetime | None = None,
    only_from: tuple[AgentStatus, ...] | None = None,
) -> bool | None:
    """Every change of an agent's status goes through here: the row (with its reason, since
    `at`, and the end of a wrap-up), a status history entry and an `agent.status_changed`
    event, in the caller's transaction. Nothing is written if neither the status nor its
    reason changes, or (given `only_from`) the agent is in another status. An agent becoming
    available is idle from `at`. Whether it changed; None if there is no such agent."""
    row = (
        await conn.execute(
            _CHANGE_STATUS,
            {
                "id": agent_id,
                "s": status,
                "r": reason,
                "at": at,
                "until": until,
                "actor": actor,
                "only": list(only_from) if only_from is not None else None,
            },
        )
    ).first()
    if row is None:
        return None
    if row.changed:
        event = status_changed(agent_id, row.status, status, reason, actor, at, ticket_id, until)
        await enqueue(conn, new_event(event, producer="router"))
    return bool(row.changed)


async def status_history(
    conn: AsyncConnection, agent_id: str, *, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """The agent's statuses, oldest first, from `since` on (each holds until the next)."""
    rows = await conn.execute(
        text(
            "SELECT status, reason, since, actor FROM agent_status_history "
            "WHERE agent_id = :a AND (CAST(:since AS timestamptz) IS NULL OR since >= :since) "
            "ORDER BY since, id LIMIT :n"
        ),
        {"a": agent_id, "since": since, "n": limit},
    )
    return [dict(r._mapping) for r in rows]


async def wrap_ups_over(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[str]:
    """Agents whose wrap-up has ended by `now`, up to `limit`, locked (SKIP LOCKED)."""
    rows = await conn.execute(
        text(
            "SELECT id FROM agents WHERE status = 'wrap_up' AND wrap_up_until <= :now "
            "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "n": limit},
    )
    return [r.id for r in rows]


async def roster(conn: AsyncConnection) -> dict[str, Agent]:
    """Every agent as an assignment round sees it, by id in id order; each agent's `load` is
    a dict of its own that the round updates as it books offers."""
    result = await conn.execute(
        text(f"SELECT {_AGENT_FIELDS} FROM agents ORDER BY id")  # noqa: S608
    )
    rows = result.all()
    loads = await agent_loads(conn)
    return {r.id: agent_from_row(r, loads.get(r.id, {})) for r in rows}


# NO KEY UPDATE: it serializes rounds of every replica (and status changes, and transfers to
# an agent) on the agent, but not the many ticket updates that merely reference the agent
# (accept, reply, resolve take KEY SHARE on it through the foreign keys); FOR UPDATE made each
# of those wait for a whole offer batch, and the batch for them.
LOCK_AGENTS = text(
    f"SELECT {_AGENT_FIELDS} FROM agents "  # noqa: S608
    "WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR NO KEY UPDATE"
)
_LOADS_AND_DECLINES = text(
    "SELECT 'load' AS kind, assignee_agent_id AS agent, channel, count(*) AS n, "
    "  NULL::uuid AS ticket_id FROM tickets "
    "WHERE assignee_agent_id = ANY(CAST(:ids AS text[])) AND status = ANY(:held) "
    "GROUP BY assignee_agent_id, channel "
    "UNION ALL "
    "SELECT 'declined', o.agent_id, NULL, NULL, o.ticket_id FROM offers o "
    "JOIN unnest(CAST(:tickets AS uuid[]), CAST(:agents AS text[])) AS p(ticket_id, agent_id) "
    "  ON o.ticket_id = p.ticket_id AND o.agent_id = p.agent_id "
    "WHERE o.status IN ('declined', 'timed_out') "
    "  AND (o.responded_at IS NULL OR o.responded_at > :refused_since)"
)


async def lock_agents(
    conn: AsyncConnection,
    ids: list[str],
    offers: list[tuple[uuid.UUID, str]],
    refused_since: datetime,
) -> tuple[dict[str, Agent], set[tuple[uuid.UUID, str]]]:
    """The agents of `ids` that exist, locked in id order, with their load read under the lock;
    and which of the (ticket, agent) `offers` the agent declined (or let time out) after
    `refused_since` (the start of the refusal cooldown: see `cooling_down`).
    The load is read in a new statement, so a new snapshot: loads and declines committed by
    others up to the moment the locks were granted."""
    rows = (await conn.execute(LOCK_AGENTS, {"ids": ids})).all()
    loads: dict[str, dict[str, int]] = {}
    declined: set[tuple[uuid.UUID, str]] = set()
    found = await conn.execute(
        _LOADS_AND_DECLINES,
        {
            "held": list(HELD),
            "ids": ids,
            "tickets": [t for t, _ in offers],
            "agents": [a for _, a in offers],
            "refused_since": refused_since,
        },
    )
    for r in found:
        if r.kind == "load":
            loads.setdefault(r.agent, {})[r.channel] = r.n
        else:
            declined.add((r.ticket_id, r.agent))
    return {row.id: agent_from_row(row, loads.get(row.id, {})) for row in rows}, declined
