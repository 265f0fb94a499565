"""Settled clocks (sla_outcomes: met by the deadline or breached; written with the ticket's
clocks, `sla.db.tickets`, and by the timers that fire, `sla.db.timers`), counted for attainment."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

AttainmentGroup = Literal["queue", "channel", "priority"]

_GROUP_COLUMNS: dict[AttainmentGroup, str] = {
    "queue": "queue_id",
    "channel": "channel",
    "priority": "priority",
}


async def attainment_counts(
    conn: AsyncConnection, from_: datetime, to: datetime, group_by: AttainmentGroup
) -> list[Row[Any]]:
    """Clocks settled in [from_, to) per group and metric: grp, metric, met, breached (groups in
    order, none last; clocks cancelled without an outcome are not in the table)."""
    column = _GROUP_COLUMNS[group_by]
    query = text(
        f"SELECT {column} AS grp, metric, count(*) FILTER (WHERE outcome = 'met') AS met, "  # noqa: S608 - column from a fixed map
        "count(*) FILTER (WHERE outcome = 'breached') AS breached "
        "FROM sla_outcomes WHERE settled_at >= :from_ AND settled_at < :to "
        "GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2"
    )
    return list((await conn.execute(query, {"from_": from_, "to": to})).all())
