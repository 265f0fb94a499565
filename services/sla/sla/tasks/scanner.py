"""The loop that fires due SLA timers: warning -> sla.warning, breach -> sla.breached,
escalation level -> sla.escalated (the SQL is sla.db.timers). One background task per
process; any number of replicas share the table.

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

import asyncpg

from ccshared.tasks import finish_or_cancel
from sla.db.timers import fire_due_timers
from sla.db.tracking import PRODUCER

log = logging.getLogger(__name__)


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
        fired, next_due_in = await fire_due_timers(self.pool, self.batch_size, shards, PRODUCER)
        if not fired:
            return 0, next_due_in
        self.stats.fired += fired
        self.stats.batches += 1
        self.stats.last_fired_at = time.time()
        return fired, None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
