"""Fires due SLA timers: warning -> sla.warning, breach -> sla.breached, escalation level ->
sla.escalated. One background task per process; any number of replicas share the table.

Each batch is one transaction: lock due rows (`FOR UPDATE SKIP LOCKED`, so replicas take
disjoint rows), enqueue their events, move the rows to fired_timers. A crash before commit
leaves the rows pending (they fire after restart); after commit they are gone and their keys
are remembered, so each timer fires exactly once. A timer waits while an earlier timer of the
same ticket is still pending, so one ticket's warning, breach and levels are published in order
even when two replicas fire the same ticket's timers at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel

from ccshared.db import one_statement
from ccshared.events import Envelope, new_event
from ccshared.events.payloads import SlaBreached, SlaEscalated, SlaWarning
from ccshared.outbox import outbox_arrays, outbox_part, outbox_tuples
from ccshared.tasks import finish_or_cancel
from sla.tracking import PRODUCER

log = logging.getLogger(__name__)

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


@dataclass
class ScannerStats:
    fired: int = 0
    batches: int = 0
    failures: int = 0
    last_fired_at: float | None = None


class TimerScanner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.2,
        max_backoff_s: float = 5.0,
        owned_shards: Callable[[], list[int] | None] | None = None,
    ) -> None:
        self.pool = pool
        # Replicas split the timers by the Kafka partition of their ticket: each fires the
        # timers of the router.tickets partitions its consumer holds, so one ticket's clock
        # updates and timer firings happen in one replica. None (Kafka not reached yet): fire
        # any due timer; SKIP LOCKED still keeps replicas apart.
        self.owned_shards = owned_shards
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.stats = ScannerStats()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="sla-timer-scanner")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Finish the batch in flight (bounded by grace_s); an unfinished one rolls back."""
        self._stopping.set()
        self._wake.set()
        await finish_or_cancel(self._task, grace_s)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            self._wake.clear()  # a wake() from here on cuts the coming sleep short
            try:
                fired, next_due_in = await self.fire_due()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the scanner must outlive any outage
                self.stats.failures += 1
                log.warning("timer scan failed, retrying in %.1fs: %s", backoff, exc)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if fired:
                continue  # more may be due, or a ticket's next timer waited behind this batch
            wait = self.poll_interval_s
            if next_due_in is not None:
                wait = min(wait, max(next_due_in, 0.0))
            await self._sleep(wait)

    async def fire_due(self) -> tuple[int, float | None]:
        """Fire one batch of due timers; returns how many, and (when none were due) the
        seconds until the next one."""
        shards = self.owned_shards() if self.owned_shards is not None else None
        if shards == []:
            return 0, None  # this replica holds no partition now: its peers fire
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_LOCK_DUE, self.batch_size, shards)
            if not rows:
                return 0, await conn.fetchval(_NEXT_DUE_IN, shards)
            fired = await conn.fetchval(_FIRE, *_fire_arguments(rows, datetime.now(UTC)))
        self.stats.fired += fired
        self.stats.batches += 1
        self.stats.last_fired_at = time.time()
        return fired, None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)


def _fire_arguments(rows: list[asyncpg.Record], now: datetime) -> list[list[Any]]:
    keys: list[str] = []
    events: list[Envelope] = []
    breaches: list[list[Any]] = [[], [], [], [], []]
    for row in rows:
        payload = orjson.loads(row["payload"])
        cycle = payload.pop("_cycle")
        event = new_event(
            _PAYLOADS[row["kind"]].model_validate({**payload, "at": now}),
            producer=PRODUCER,
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
