"""Ticket facts and the KPI rollups kept from them.

Every change to a ticket's facts goes through `FactChanges`: it locks the row, writes the new
values and works out what the change does to the rollups (old contribution out, new one in).
That delta is appended to `kpi_rollup_delta` once per transaction (one INSERT, no conflict
target): transactions never update the shared rollup rows (today's `all` row, each queue's,
agent's and channel's), so concurrent resolutions neither wait on one row nor deadlock on two.
Reads add the pending deltas to `kpi_rollup` (`feedback.db.kpis`); `fold_rollup_deltas` (the
scheduler's) moves them into it in the background.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from feedback.domain.kpis import (
    BUCKETS,
    HIST_COLUMNS,
    SUM_COLUMNS,
    KpiSums,
    RollupKey,
    TicketFacts,
    rollup_delta,
)

_CUSTOMER_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 7))")
_ENSURE = text("INSERT INTO ticket_facts (ticket_id) VALUES (:id) ON CONFLICT DO NOTHING")
_LOCK = text("SELECT * FROM ticket_facts WHERE ticket_id = :id FOR UPDATE")
_RESOLVED_BETWEEN = text(
    "SELECT ticket_id FROM ticket_facts WHERE customer_id = :customer_id "
    " AND resolved_at < :before AND resolved_at >= :since AND NOT recontacted "
    "ORDER BY ticket_id"
)


async def lock_customer(conn: AsyncConnection, customer_id: uuid.UUID) -> None:
    """Serializes work on one customer's tickets that reads what another may be writing:
    the survey quiet period, and a contact racing the resolution it follows (observed FCR)."""
    await conn.execute(_CUSTOMER_LOCK, {"key": str(customer_id)})


async def resolved_without_recontact(
    conn: AsyncConnection, customer_id: uuid.UUID, since: datetime, before: datetime
) -> list[uuid.UUID]:
    """The customer's tickets resolved in [since, before) not yet marked recontacted, in id
    order (the order their fact rows are then locked in)."""
    rows = await conn.execute(
        _RESOLVED_BETWEEN, {"customer_id": customer_id, "since": since, "before": before}
    )
    return list(rows.scalars())


def facts_of(row: Mapping[str, Any]) -> TicketFacts:
    outcomes = row["sla_outcomes"] or {}
    if isinstance(outcomes, str):
        outcomes = orjson.loads(outcomes)
    return TicketFacts(
        resolved_at=row["resolved_at"],
        opened_at=row["opened_at"],
        customer_wrote_at=row["customer_wrote_at"],
        channel=row["channel"],
        queue_id=row["queue_id"],
        agent_id=row["agent_id"],
        category=row["category"],
        first_response_at=row["first_response_at"],
        reopened=row["reopened"],
        recontacted=row["recontacted"],
        sla_met=sum(1 for v in outcomes.values() if v == "met"),
        sla_breached=sum(1 for v in outcomes.values() if v == "breached"),
        escalated=row["escalated"],
        survey_sent=row["survey_sent"],
        answered=row["answered"],
        csat=row["csat"],
        nps=row["nps"],
        solved_first_contact=row["solved_first_contact"],
        praised=row["praised"],
    )


# Inside `rollup_at_end`: the delta every FactChanges of the transaction adds to, written once
# when the block ends.
_shared_delta: ContextVar[dict[RollupKey, KpiSums] | None] = ContextVar(
    "feedback_shared_rollup_delta", default=None
)


@asynccontextmanager
async def rollup_at_end(conn: AsyncConnection) -> AsyncIterator[None]:
    """Within the block, every FactChanges adds to one rollup delta, appended when the block
    ends: a consumer batch writes one delta row per rollup key it changed, however many of its
    events changed it."""
    delta: dict[RollupKey, KpiSums] = {}
    token = _shared_delta.set(delta)
    try:
        yield
    finally:
        _shared_delta.reset(token)
    rows = [(k, v) for k, v in sorted(delta.items()) if not v.is_zero]
    if rows:
        await apply_rollup_delta(conn, rows)


class FactChanges:
    """Collects fact changes of one transaction and their rollup delta; `flush` writes it
    (inside `rollup_at_end`, the block's end does)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        shared = _shared_delta.get()
        self._deferred = shared is not None
        self.delta: dict[RollupKey, KpiSums] = shared if shared is not None else {}

    async def current(self, ticket_id: uuid.UUID) -> dict[str, Any]:
        """The ticket's fact row, locked for this transaction (created empty if unknown)."""
        await self.conn.execute(_ENSURE, {"id": ticket_id})
        row = dict((await self.conn.execute(_LOCK, {"id": ticket_id})).mappings().one())
        if isinstance(row["sla_outcomes"], str):  # jsonb arrives as text through asyncpg
            row["sla_outcomes"] = orjson.loads(row["sla_outcomes"])
        return row

    async def update(
        self, ticket_id: uuid.UUID, changes: Mapping[str, Any], before: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write `changes` (column → value); returns the row after the change."""
        if before is None:
            before = await self.current(ticket_id)
        changes = {k: v for k, v in changes.items() if before.get(k) != v}
        if not changes:
            return before
        params = {
            k: (orjson.dumps(v).decode() if k == "sla_outcomes" else v) for k, v in changes.items()
        }
        assignments = ", ".join(
            f"{k} = CAST(:{k} AS jsonb)" if k == "sla_outcomes" else f"{k} = :{k}" for k in changes
        )
        # Column names come from this module's callers, never from input.
        sql = f"UPDATE ticket_facts SET {assignments}, updated_at = now() WHERE ticket_id = :id"  # noqa: S608
        await self.conn.execute(text(sql), {**params, "id": ticket_id})
        after = {**before, **changes}
        for key, part in rollup_delta(facts_of(before), facts_of(after)).items():
            self.delta[key] = self.delta.get(key, KpiSums()) + part
        return after

    async def flush(self) -> None:
        if self._deferred:
            return
        rows = [(k, v) for k, v in sorted(self.delta.items()) if not v.is_zero]
        self.delta = {}
        if rows:
            await apply_rollup_delta(self.conn, rows)


_COLUMNS = ("dimension", "day", "value", *SUM_COLUMNS, *HIST_COLUMNS)


def _append_sql(count: int) -> str:
    tuples = []
    for i in range(count):
        parts = [f":dimension_{i}", f":day_{i}", f":value_{i}"]
        parts += [f":{c}_{i}" for c in SUM_COLUMNS]
        parts += [f"CAST(:{c}_{i} AS int[])" for c in HIST_COLUMNS]
        tuples.append("(" + ", ".join(parts) + ")")
    return f"INSERT INTO kpi_rollup_delta ({', '.join(_COLUMNS)}) VALUES {', '.join(tuples)}"  # noqa: S608


async def apply_rollup_delta(conn: AsyncConnection, rows: list[tuple[RollupKey, KpiSums]]) -> None:
    """Append the delta (one row per rollup key; a histogram it leaves alone is NULL)."""
    params: dict[str, Any] = {}
    for i, ((day, dimension, value), sums) in enumerate(rows):
        params[f"dimension_{i}"] = dimension
        params[f"day_{i}"] = day
        params[f"value_{i}"] = value
        for column, amount in sums.as_row().items():
            if column in HIST_COLUMNS and not any(amount):
                amount = None
            params[f"{column}_{i}"] = amount
    await conn.execute(text(_append_sql(len(rows))), params)


_FOLD_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('feedback.kpi_fold', 7))")


# One statement: take the oldest deltas, delete them, add their sums per key into kpi_rollup
# (key order) and count them. Readers see them either pending or folded, never both.
def _fold_sql() -> str:
    sums = ", ".join(f"sum({c})" for c in SUM_COLUMNS)
    hists = ", ".join(
        f"coalesce(int_array_sum({c}), array_fill(0, ARRAY[{BUCKETS}]))" for c in HIST_COLUMNS
    )
    updates = ", ".join(
        [f"{c} = kpi_rollup.{c} + EXCLUDED.{c}" for c in SUM_COLUMNS]
        + [f"{c} = int_array_add(kpi_rollup.{c}, EXCLUDED.{c})" for c in HIST_COLUMNS]
    )
    return (
        "WITH batch AS (SELECT id FROM kpi_rollup_delta ORDER BY id LIMIT :limit), "  # noqa: S608
        "moved AS (DELETE FROM kpi_rollup_delta d USING batch WHERE d.id = batch.id "
        " RETURNING d.*), "
        f"folded AS (INSERT INTO kpi_rollup ({', '.join(_COLUMNS)}) "
        f" SELECT dimension, day, value, {sums}, {hists} FROM moved "
        " GROUP BY dimension, day, value ORDER BY dimension, day, value "
        f" ON CONFLICT (dimension, day, value) DO UPDATE SET {updates} RETURNING 1) "
        "SELECT count(*) FROM moved"
    )


_FOLD = text(_fold_sql())


async def fold_rollup_deltas(conn: AsyncConnection, limit: int) -> int:
    """Fold up to `limit` of the oldest pending deltas into `kpi_rollup`; how many were folded.
    One folder at a time (a transaction-scoped advisory lock: another replica's scheduler
    skips its turn), so the base rows are only ever written by it, never by the writers."""
    if not (await conn.execute(_FOLD_LOCK)).scalar_one():
        return 0
    return int((await conn.execute(_FOLD, {"limit": limit})).scalar_one())
