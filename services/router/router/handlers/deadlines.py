"""SLA deadlines of a fetch: each ticket's next deadline stored as `tickets.sla_deadline` (the
waiting tickets' order within a priority), the latest version of each ticket, one statement."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import SlaDeadlineChanged
from router.db.deadlines import set_sla_deadlines
from router.domain.tickets import latest_deadlines


async def apply_deadlines(conn: AsyncConnection, changes: Sequence[SlaDeadlineChanged]) -> None:
    """A ticket not ours (another deployment's) matches no row; an older version than the one
    stored (delivered late) changes nothing."""
    await set_sla_deadlines(conn, latest_deadlines(changes))
