"""Each ticket's next SLA deadline as SLA publishes it (`sla.deadline_changed`): a fetch's
deadlines written in one statement, only forward."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from router.domain.tickets import NextDeadline

# A fetch's deadlines in one statement. The tickets are locked in id order first, as escalation
# batches lock theirs, so two such batches wait for each other rather than deadlock; a version
# not above the stored one (an older event delivered late) changes nothing.
_SET_SLA_DEADLINES = text(
    "WITH d AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:deadlines AS timestamptz[]), "
    "  CAST(:metrics AS text[]), CAST(:versions AS bigint[])) AS d(id, deadline, metric, "
    "  version)), "
    "locked AS (SELECT t.id FROM tickets t JOIN d ON d.id = t.id "
    "  WHERE t.sla_deadline_version < d.version ORDER BY t.id FOR UPDATE OF t) "
    "UPDATE tickets t SET sla_deadline = d.deadline, sla_deadline_metric = d.metric, "
    "  sla_deadline_version = d.version "
    "FROM d JOIN locked l ON l.id = d.id "
    "WHERE t.id = d.id AND t.sla_deadline_version < d.version"
)


async def set_sla_deadlines(
    conn: AsyncConnection, deadlines: dict[uuid.UUID, NextDeadline]
) -> None:
    """Store each ticket's next SLA deadline (or none) with its version, moving only forward.
    One deadline per ticket: the caller keeps the latest of a fetch."""
    if not deadlines:
        return
    ids = sorted(deadlines)
    await conn.execute(
        _SET_SLA_DEADLINES,
        {
            "ids": ids,
            "deadlines": [deadlines[i].deadline for i in ids],
            "metrics": [deadlines[i].metric for i in ids],
            "versions": [deadlines[i].version for i in ids],
        },
    )
