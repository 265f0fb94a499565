"""Firing due SLA timers in the database: lock a batch of due rows, and in one statement drop
them, remember their keys, enqueue their events and record breaches (see sla.tasks.scanner for
the loop and the guarantees)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel

from ccshared.db import one_statement
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import SlaBreached, SlaEscalated, SlaWarning
from ccshared.outbox import outbox_arrays, outbox_part, outbox_tuples

_PAYLOADS: dict[str, type[BaseModel]] = {
    "warning": SlaWarning,
    "breach": SlaBreached,
    "escalation": SlaEscalated,
}

_LOCK_DUE = """
SELECT t.key, t.ticket_id, t.kind, t.metric, t.payload
FROM sla_timers t
WHERE t.due_at <= now()
  AND ($2::smallint[] IS NULL OR t.shard = ANY($2::smallint[]))
  AND NOT EXISTS (
      SELECT 1 FROM sla_timers e
      WHERE e.ticket_id = t.ticket_id AND (e.due_at, e.seq) < (t.due_at, t.seq))
ORDER BY t.due_at, t.seq
LIMIT $1
FOR UPDATE OF t SKIP LOCKED
"""

_NEXT_DUE_IN = (
    "SELECT CAST(EXTRACT(EPOCH FROM min(due_at) - clock_timestamp()) AS float8) FROM sla_timers "
    "WHERE $1::smallint[] IS NULL OR shard = ANY($1::smallint[])"
)

# One statement: drop the rows, remember their keys, enqueue the events (in firing order), and
# record breaches for attainment.
_FIRE = one_statement(
    (
        "gone",
        "DELETE FROM sla_timers WHERE key = ANY($1::text[]) "
        "RETURNING key, ticket_id, kind, level, due_at",
    ),
    (
        "fired",
        """INSERT INTO fired_timers (key, ticket_id, kind, level, due_at, event_id)
    SELECT g.key, g.ticket_id, g.kind, g.level, g.due_at, f.event_id
    FROM gone g JOIN unnest($1::text[], $2::uuid[]) AS f(key, event_id) USING (key)""",
    ),
    outbox_part(first_param=3),  # $3 .. $8
    (
        "breached",
        """INSERT INTO sla_outcomes (ticket_id, metric, cycle, outcome, deadline, settled_at,
                              queue_id, channel, priority, policy_id)
    SELECT b.ticket_id, b.metric, b.cycle, 'breached', b.deadline, b.deadline,
           t.queue_id, t.channel, t.priority, b.policy_id
    FROM unnest($9::uuid[], $10::text[], $11::int[], $12::timestamptz[], $13::text[])
         AS b(ticket_id, metric, cycle, deadline, policy_id)
    JOIN sla_tickets t USING (ticket_id)
    ON CONFLICT (ticket_id, metric, cycle) DO UPDATE
        SET outcome = 'breached', settled_at = EXCLUDED.settled_at
        WHERE sla_outcomes.outcome = 'met'""",
    ),
    ("", "SELECT count(*) FROM gone"),
)


async def fire_due_timers(
    pool: asyncpg.Pool, batch_size: int, shards: list[int] | None, producer: str
) -> tuple[int, float | None]:
    """Fire one batch of due timers (of `shards`; None: any) in one transaction; returns how
    many, and (when none were due) the seconds until the next one."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_LOCK_DUE, batch_size, shards)
        if not rows:
            return 0, await conn.fetchval(_NEXT_DUE_IN, shards)
        fired: int = await conn.fetchval(_FIRE, *_fire_arguments(rows, datetime.now(UTC), producer))
    return fired, None


def _fire_arguments(rows: list[asyncpg.Record], now: datetime, producer: str) -> list[list[Any]]:
    keys: list[str] = []
    events: list[Envelope] = []
    breaches: list[list[Any]] = [[], [], [], [], []]
    for row in rows:
        payload = orjson.loads(row["payload"])
        cycle = payload.pop("_cycle")
        event = new_event(
            _PAYLOADS[row["kind"]].model_validate({**payload, "at": now}),
            producer=producer,
            occurred_at=now,
        )
        keys.append(row["key"])
        events.append(event)
        if row["kind"] == "breach":
            for column, value in zip(
                breaches,
                (
                    row["ticket_id"],
                    row["metric"],
                    cycle,
                    datetime.fromisoformat(payload["deadline"]),
                    payload["policy_id"],
                ),
                strict=True,
            ):
                column.append(value)
    event_ids: list[Any] = [e.event_id for e in events]
    return [keys, event_ids, *outbox_arrays(outbox_tuples(events)), *breaches]
