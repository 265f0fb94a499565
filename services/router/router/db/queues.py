"""Queue rows: reading them with their depth and waits, creating and changing them, and what
an assignment round reads of them (the queues with waiting tickets, the most urgent waiting
tickets of each, the tickets whose routing step timed out)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from router.domain.assignment import Strategy


@dataclass(frozen=True)
class QueueRow:
    id: str
    required_skills: frozenset[str]
    strategy: Strategy
    offer_timeout_s: int
    rr_cursor: str | None
    wrap_up_s: int = 0


async def queue_views(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every queue with its depth, oldest wait (seconds) and available agents."""
    rows = await conn.execute(
        text(
            "SELECT q.id, q.name, q.required_skills, q.strategy, q.offer_timeout_s, q.wrap_up_s, "
            "  q.supervisors, q.managers, "
            "  count(t.id) AS depth, extract(epoch FROM now() - min(t.queued_at)) AS oldest, "
            "  (SELECT count(*) FROM agents a WHERE a.status = 'available' "
            "     AND a.skills ?& q.required_skills) AS available "
            "FROM queues q LEFT JOIN tickets t ON t.queue_id = q.id AND t.status = 'queued' "
            "GROUP BY q.id ORDER BY q.id"
        )
    )
    return [
        {
            "id": r.id,
            "name": r.name,
            "required_skills": list(r.required_skills),
            "strategy": r.strategy,
            "offer_timeout_s": r.offer_timeout_s,
            "wrap_up_s": r.wrap_up_s,
            "supervisors": list(r.supervisors),
            "managers": list(r.managers),
            "depth": r.depth,
            "oldest_wait_s": float(r.oldest) if r.oldest is not None else None,
            "agents_available": r.available,
        }
        for r in rows
    ]


async def upsert_queue(
    conn: AsyncConnection,
    queue_id: str,
    *,
    name: str,
    required_skills: list[str],
    strategy: str,
    offer_timeout_s: int,
    wrap_up_s: int = 0,
    supervisors: list[str] | None = None,
    managers: list[str] | None = None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO queues (id, name, required_skills, strategy, offer_timeout_s, wrap_up_s, "
            "supervisors, managers) "
            "VALUES (:id, :name, :skills, :strategy, :timeout, :wrap_up, :sups, :mgrs) "
            "ON CONFLICT (id) DO UPDATE SET "
            "name = EXCLUDED.name, required_skills = EXCLUDED.required_skills, "
            "strategy = EXCLUDED.strategy, offer_timeout_s = EXCLUDED.offer_timeout_s, "
            "wrap_up_s = EXCLUDED.wrap_up_s, supervisors = EXCLUDED.supervisors, "
            "managers = EXCLUDED.managers, updated_at = now()"
        ),
        {
            "id": queue_id,
            "name": name,
            "skills": required_skills,
            "strategy": strategy,
            "timeout": offer_timeout_s,
            "wrap_up": wrap_up_s,
            "sups": supervisors or [],
            "mgrs": managers or [],
        },
    )


async def queue_ids(conn: AsyncConnection) -> set[str]:
    return {r.id for r in await conn.execute(text("SELECT id FROM queues"))}


async def queues_with_waiting(conn: AsyncConnection) -> list[QueueRow]:
    rows = await conn.execute(
        text(
            "SELECT q.id, q.required_skills, q.strategy, q.offer_timeout_s, q.rr_cursor "
            "FROM queues q WHERE EXISTS (SELECT 1 FROM tickets t "
            "WHERE t.queue_id = q.id AND t.status = 'queued') ORDER BY q.id"
        )
    )
    return [
        QueueRow(r.id, frozenset(r.required_skills), r.strategy, r.offer_timeout_s, r.rr_cursor)
        for r in rows
    ]


# The most urgent waiting tickets of every (queue, channel) given, up to :n each, locked (SKIP
# LOCKED: another replica's round takes others). One statement for all: a round used to take a
# transaction per queue, and a new ticket waited for the other queues' batches. A window per
# channel, and only for channels someone could take now: with one window per queue, tickets on
# a channel nobody had room for filled it and hid the others behind them.
_WAITING = text(
    "SELECT w.* FROM unnest(CAST(:queues AS text[]), CAST(:channels AS text[])) "
    "  AS q(id, channel) CROSS JOIN LATERAL ("
    "  SELECT t.id, t.queue_id, t.channel, t.status, t.priority, t.priority_rank, "
    "    t.sla_deadline, t.sla_deadline_metric, t.queued_at, t.policy_version, t.policy_step, "
    "    t.owner_agent_id, "
    "    ARRAY(SELECT o.agent_id FROM offers o WHERE o.ticket_id = t.id "
    "      AND o.status IN ('declined', 'timed_out') "
    "      AND (o.responded_at IS NULL OR o.responded_at > :refused_since)) "
    "      AS declined "
    "  FROM tickets t WHERE t.queue_id = q.id AND t.channel = q.channel "
    "    AND t.status = 'queued' "
    "  ORDER BY t.priority_rank, t.sla_deadline NULLS LAST, t.queued_at, t.id "
    "  LIMIT :n FOR UPDATE OF t SKIP LOCKED) AS w"
)


async def waiting_tickets(
    conn: AsyncConnection, pairs: list[tuple[str, str]], window: int, refused_since: datetime
) -> list[Any]:
    """Up to `window` waiting tickets of each (queue id, channel), locked; rows with the
    agents who declined each (or let its offer time out) after `refused_since` in `declined`
    (`domain.assignment.refusal_cutoff`: a refusal holds for a cooldown, not for ever)."""
    return list(
        (
            await conn.execute(
                _WAITING,
                {
                    "queues": [q for q, _ in pairs],
                    "channels": [c for _, c in pairs],
                    "n": window,
                    "refused_since": refused_since,
                },
            )
        ).all()
    )


async def overflow_due(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Waiting tickets whose routing step timed out, up to `limit`, locked (SKIP LOCKED)."""
    rows = await conn.execute(
        text(
            "SELECT id FROM tickets WHERE status = 'queued' "
            "AND step_timeout_at <= :now ORDER BY step_timeout_at LIMIT :n "
            "FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "n": limit},
    )
    return [r.id for r in rows]


async def early_overflow_candidates(
    conn: AsyncConnection, now: datetime, waits: dict[str, float], limit: int = 100
) -> list[Any]:
    """Waiting tickets of the queues in `waits` (queue id → recent wait, seconds) whose step
    overflows later (its timeout is still ahead) and whose SLA deadline comes before their
    likely offer (queued at + the queue's wait, or now), up to `limit`, soonest deadline first,
    locked (SKIP LOCKED). Rows: id, queue_id, queued_at, sla_deadline, sla_deadline_metric."""
    if not waits:
        return []
    rows = await conn.execute(
        text(
            "SELECT t.id, t.queue_id, t.queued_at, t.sla_deadline, t.sla_deadline_metric "
            "FROM tickets t JOIN unnest(CAST(:queues AS text[]), CAST(:waits AS float8[])) "
            "  AS w(queue_id, wait_s) ON w.queue_id = t.queue_id "
            "WHERE t.status = 'queued' AND t.step_timeout_at > :now "
            "  AND t.sla_deadline IS NOT NULL AND t.sla_deadline <= greatest(:now, "
            "    coalesce(t.queued_at, :now) + w.wait_s * interval '1 second') "
            "ORDER BY t.sla_deadline LIMIT :n FOR UPDATE OF t SKIP LOCKED"
        ),
        {"queues": list(waits), "waits": list(waits.values()), "now": now, "n": limit},
    )
    return list(rows.all())


async def clear_step_timeout(conn: AsyncConnection, ticket_id: uuid.UUID) -> None:
    """The ticket's step has nowhere to overflow to: it waits where it is."""
    await conn.execute(
        text("UPDATE tickets SET step_timeout_at = NULL WHERE id = :id"), {"id": ticket_id}
    )


async def wrap_up_of(conn: AsyncConnection, queue_id: str | None) -> int:
    """The queue's wrap-up seconds after a resolve (0: none, or no such queue)."""
    if queue_id is None:
        return 0
    row = (
        await conn.execute(text("SELECT wrap_up_s FROM queues WHERE id = :id"), {"id": queue_id})
    ).first()
    return int(row.wrap_up_s) if row is not None else 0
