"""Ticket rows: reading one (locked for a change), history, contacts, thread keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.problems import NotFound

TICKET_COLUMNS = (
    "id, customer_id, channel, status, category, priority, language, segment, queue_id, "
    "owner_agent_id, assignee_agent_id, classification, policy_version, policy_step, "
    "step_timeout_at, sla_deadline, follow_up_of, resolution_code, first_contact_resolution, "
    "opened_at, queued_at, last_contact_at, first_response_at, resolved_at, closed_at, updated_at"
)


@dataclass
class Ticket:
    id: uuid.UUID
    customer_id: uuid.UUID
    channel: str
    status: str
    category: str
    priority: str
    language: str | None
    segment: str | None
    queue_id: str | None
    owner_agent_id: str | None
    assignee_agent_id: str | None
    classification: dict[str, Any]
    policy_version: int | None
    policy_step: str | None
    step_timeout_at: datetime | None
    sla_deadline: datetime | None
    follow_up_of: uuid.UUID | None
    resolution_code: str | None
    first_contact_resolution: bool | None
    opened_at: datetime
    queued_at: datetime | None
    last_contact_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Ticket:
        values = dict(row._mapping)
        if isinstance(values["classification"], str):
            values["classification"] = orjson.loads(values["classification"])
        return cls(**values)


# ticket_history's columns with their SQL types, for writing many rows at once
# (ccshared.db.insert_many / insert_from_arrays); rows are tuples in this order.
HISTORY_COLUMNS = (
    ("ticket_id", "uuid"),
    ("at", "timestamptz"),
    ("actor", "text"),
    ("action", "text"),
    ("from_status", "text"),
    ("to_status", "text"),
    ("reason", "text"),
    ("data", "jsonb"),
)


class TicketNotFound(NotFound):
    pass


async def get_ticket(conn: AsyncConnection, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket:
    suffix = " FOR UPDATE" if lock else ""
    row = (
        await conn.execute(
            text(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = :id{suffix}"),  # noqa: S608
            {"id": ticket_id},
        )
    ).first()
    if row is None:
        raise TicketNotFound(f"No ticket {ticket_id}.")
    return Ticket.from_row(row)


# Who may read a ticket (the same rule as `agent_may_read`, in SQL, for lists that must filter
# before their LIMIT): its assignee, its owner, and, while it waits in a queue, the agents who
# serve that queue (whose skills cover the queue's required skills, as the assigner decides).
# Columns are qualified: the subquery's agents have a `status` too.
READABLE_BY_AGENT = (
    "(tickets.assignee_agent_id = :reader OR tickets.owner_agent_id = :reader "
    " OR (tickets.status = 'queued' AND tickets.queue_id IN (SELECT q.id FROM queues q "
    "   JOIN agents a ON a.id = :reader AND a.skills ?& q.required_skills)))"
)
_SERVES_QUEUE = text(
    "SELECT 1 FROM queues q JOIN agents a ON a.id = :agent AND a.skills ?& q.required_skills "
    "WHERE q.id = :queue"
)


async def agent_may_read(conn: AsyncConnection, ticket: Ticket, agent_id: str) -> bool:
    """Whether the agent may read the ticket (see `READABLE_BY_AGENT`)."""
    if agent_id in (ticket.assignee_agent_id, ticket.owner_agent_id):
        return True
    if ticket.status != "queued" or ticket.queue_id is None:
        return False
    found = await conn.execute(_SERVES_QUEUE, {"agent": agent_id, "queue": ticket.queue_id})
    return found.first() is not None


async def get_tickets(
    conn: AsyncConnection, ticket_ids: list[uuid.UUID], *, lock: bool = False
) -> dict[uuid.UUID, Ticket]:
    """The tickets of those ids that exist, by id; locked in id order if `lock` (so that two
    transactions locking overlapping sets this way never wait on each other in a cycle)."""
    suffix = " ORDER BY id FOR UPDATE" if lock else ""
    rows = await conn.execute(
        text(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ANY(:ids){suffix}"),  # noqa: S608
        {"ids": ticket_ids},
    )
    return {row.id: Ticket.from_row(row) for row in rows}


async def add_history(
    conn: AsyncConnection,
    ticket_id: uuid.UUID,
    *,
    at: datetime,
    actor: str,
    action: str,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO ticket_history (ticket_id, at, actor, action, from_status, to_status, "
            "reason, data) VALUES (:t, :at, :actor, :action, :f, :to, :reason, "
            "CAST(:data AS jsonb))"
        ),
        {
            "t": ticket_id,
            "at": at,
            "actor": actor,
            "action": action,
            "f": from_status,
            "to": to_status,
            "reason": reason,
            "data": orjson.dumps(data or {}).decode(),
        },
    )
