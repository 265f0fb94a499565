"""The sla_tickets rows and each ticket's pending timers (SQLAlchemy Core, few round trips)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import Channel, Priority

_LOCK_TICKET = text(
    "SELECT ticket_id, priority, channel, category, queue_id, segment, policy_id, "
    "policy_version, status, agent_replied, clocks, opened_at, deadline_version "
    "FROM sla_tickets WHERE ticket_id = :id FOR UPDATE"
)
_GET_TICKET = text(
    "SELECT ticket_id, priority, channel, category, queue_id, segment, policy_id, "
    "policy_version, status, agent_replied, clocks, opened_at, deadline_version "
    "FROM sla_tickets WHERE ticket_id = :id"
)
_OPEN_ON_POLICY = text(
    "SELECT ticket_id FROM sla_tickets WHERE policy_id = :policy_id AND status = 'open' "
    "AND ticket_id > :after ORDER BY ticket_id LIMIT :limit"
)
_AT_RISK = text(
    "SELECT ticket_id, priority, queue_id, policy_id, policy_version, agent_replied, clocks "
    "FROM sla_tickets WHERE next_deadline IS NOT NULL AND status = 'open' "
    "AND (CAST(:queue_id AS text) IS NULL OR queue_id = :queue_id) "
    "ORDER BY next_deadline LIMIT :limit"
)
_UPSERT_TICKET = text(
    "INSERT INTO sla_tickets (ticket_id, priority, channel, category, queue_id, segment, "
    " policy_id, policy_version, status, agent_replied, clocks, next_deadline, opened_at, "
    " deadline_version) "
    "VALUES (:ticket_id, :priority, :channel, :category, :queue_id, :segment, :policy_id, "
    " :policy_version, :status, :agent_replied, CAST(:clocks AS jsonb), :next_deadline, "
    " :opened_at, :deadline_version) "
    "ON CONFLICT (ticket_id) DO UPDATE SET priority = EXCLUDED.priority, "
    " channel = EXCLUDED.channel, category = EXCLUDED.category, queue_id = EXCLUDED.queue_id, "
    " segment = EXCLUDED.segment, policy_id = EXCLUDED.policy_id, "
    " policy_version = EXCLUDED.policy_version, status = EXCLUDED.status, "
    " agent_replied = EXCLUDED.agent_replied, clocks = EXCLUDED.clocks, "
    " next_deadline = EXCLUDED.next_deadline, deadline_version = EXCLUDED.deadline_version, "
    " updated_at = now()"
)
_DROP_TIMERS = text("DELETE FROM sla_timers WHERE ticket_id = :ticket_id")
# A key that already fired is never scheduled again: that is what makes each level fire once
# however often the clocks are recomputed (redelivery, re-match, restart).
_INSERT_TIMERS = text(
    "INSERT INTO sla_timers (key, ticket_id, shard, metric, cycle, kind, level, seq, due_at, "
    " payload) "
    "SELECT t.key, t.ticket_id, t.shard, t.metric, t.cycle, t.kind, t.level, t.seq, t.due_at, "
    " t.payload "
    "FROM unnest(CAST(:keys AS text[]), CAST(:ticket_ids AS uuid[]), CAST(:shards AS int[]), "
    " CAST(:metrics AS text[]), CAST(:cycles AS int[]), CAST(:kinds AS text[]), "
    " CAST(:levels AS int[]), CAST(:seqs AS int[]), CAST(:due_ats AS timestamptz[]), "
    " CAST(:payloads AS jsonb[])) "
    " AS t(key, ticket_id, shard, metric, cycle, kind, level, seq, due_at, payload) "
    "WHERE NOT EXISTS (SELECT 1 FROM fired_timers f WHERE f.key = t.key) "
    "ON CONFLICT (key) DO UPDATE SET due_at = EXCLUDED.due_at, seq = EXCLUDED.seq, "
    " payload = EXCLUDED.payload"
)
_RECORD_OUTCOMES = text(
    "INSERT INTO sla_outcomes (ticket_id, metric, cycle, outcome, deadline, settled_at, "
    " queue_id, channel, priority, policy_id) "
    "VALUES (:ticket_id, :metric, :cycle, :outcome, :deadline, :settled_at, :queue_id, "
    " :channel, :priority, :policy_id) "
    "ON CONFLICT (ticket_id, metric, cycle) DO UPDATE SET outcome = 'breached', "
    " settled_at = LEAST(sla_outcomes.settled_at, EXCLUDED.settled_at) "
    "WHERE EXCLUDED.outcome = 'breached' AND sla_outcomes.outcome = 'met'"
)


@dataclass
class TicketRow:
    ticket_id: uuid.UUID
    priority: Priority
    channel: Channel
    category: str
    queue_id: str | None
    segment: str | None
    policy_id: str | None
    policy_version: int | None
    status: str
    agent_replied: bool
    clocks: dict[str, Any]
    opened_at: datetime
    # How often sla.deadline_changed was published for this ticket (its `version`).
    deadline_version: int = 0


async def lock_ticket(conn: AsyncConnection, ticket_id: uuid.UUID) -> TicketRow | None:
    row = (await conn.execute(_LOCK_TICKET, {"id": ticket_id})).mappings().first()
    return TicketRow(**row) if row is not None else None


async def get_ticket(conn: AsyncConnection, ticket_id: uuid.UUID) -> TicketRow | None:
    row = (await conn.execute(_GET_TICKET, {"id": ticket_id})).mappings().first()
    return TicketRow(**row) if row is not None else None


async def open_tickets_on_policy(
    conn: AsyncConnection, policy_id: str, after: uuid.UUID, limit: int
) -> list[uuid.UUID]:
    rows = await conn.execute(
        _OPEN_ON_POLICY, {"policy_id": policy_id, "after": after, "limit": limit}
    )
    return [r.ticket_id for r in rows]


async def tickets_due_first(
    conn: AsyncConnection, limit: int, queue_id: str | None
) -> list[Row[Any]]:
    """Open tickets with a running clock (of one queue, or of all), the earliest next deadline
    first: ticket_id, priority, queue_id, policy_id, policy_version, agent_replied, clocks."""
    rows = await conn.execute(_AT_RISK, {"limit": limit, "queue_id": queue_id})
    return list(rows.all())


async def save_ticket(
    conn: AsyncConnection, row: TicketRow, next_deadline: datetime | None
) -> None:
    values = {k: v for k, v in row.__dict__.items() if k != "clocks"}
    await conn.execute(
        _UPSERT_TICKET,
        {**values, "clocks": orjson.dumps(row.clocks).decode(), "next_deadline": next_deadline},
    )


async def replace_timers(
    conn: AsyncConnection, ticket_id: uuid.UUID, timers: list[dict[str, Any]]
) -> None:
    """Drop the ticket's pending timers and schedule `timers` (those not fired before).

    The DELETE waits for a scanner that holds one of these rows locked, so a timer being fired
    right now is either fired (and then found in fired_timers) or replaced, never both."""
    await conn.execute(_DROP_TIMERS, {"ticket_id": ticket_id})
    if not timers:
        return
    await conn.execute(
        _INSERT_TIMERS,
        {
            "keys": [t["key"] for t in timers],
            "ticket_ids": [t["ticket_id"] for t in timers],
            "shards": [t["shard"] for t in timers],
            "metrics": [t["metric"] for t in timers],
            "cycles": [t["cycle"] for t in timers],
            "kinds": [t["kind"] for t in timers],
            "levels": [t["level"] for t in timers],
            "seqs": [t["seq"] for t in timers],
            "due_ats": [t["due_at"] for t in timers],
            "payloads": [orjson.dumps(t["payload"]).decode() for t in timers],
        },
    )


async def record_outcomes(conn: AsyncConnection, outcomes: list[dict[str, Any]]) -> None:
    if outcomes:
        await conn.execute(_RECORD_OUTCOMES, outcomes)
