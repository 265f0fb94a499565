"""SLA escalations applied to tickets: a fetch's escalations in order, their tickets locked at
once (in id order), their changes written together (`router.db.tickets.TicketBatch`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import SlaEscalated
from ccshared.logging import correlation_id
from router.db.tickets import TicketBatch, get_tickets
from router.domain.lifecycle import OPEN_STATUSES
from router.domain.tickets import escalate


async def apply_escalations(
    conn: AsyncConnection, escalations: Sequence[tuple[str | None, SlaEscalated]]
) -> None:
    """Each escalation (with the correlation id its events carry on) in order. A ticket not
    ours (another deployment's) or no longer open is left alone."""
    ids = sorted({e.ticket_id for _, e in escalations})
    tickets = await get_tickets(conn, ids, lock=True)
    batch = TicketBatch()
    for cid, escalated in escalations:
        token = correlation_id.set(cid)
        try:
            ticket = tickets.get(escalated.ticket_id)
            if ticket is not None and ticket.status in OPEN_STATUSES:
                for change in escalate(ticket, escalated, datetime.now(UTC)):
                    await batch.add(conn, change)
        finally:
            correlation_id.reset(token)
    await batch.flush(conn)
