"""SLA escalations applied to tickets: a fetch's escalations in order, their tickets locked at
once (in id order), their changes written together (`router.db.tickets.TicketBatch`), and
the notifications of `notify_supervisor` / `notify_manager` to the people of the queue the
ticket is in after the escalation (its supervisors, its managers), in one more statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import SlaEscalated
from ccshared.logging import correlation_id
from router.db.notifications import known_notifications, queue_staff, write_notifications
from router.db.tickets import TicketBatch, get_tickets
from router.domain import notifications
from router.domain.lifecycle import OPEN_STATUSES
from router.domain.notifications import QueueStaff
from router.domain.tickets import Ticket, escalate

_NOTIFY = {"notify_supervisor", "notify_manager"}


async def apply_escalations(
    conn: AsyncConnection, escalations: Sequence[tuple[str | None, SlaEscalated]]
) -> None:
    """Each escalation (with the correlation id its events carry on) in order. A ticket not
    ours (another deployment's) or no longer open is left alone."""
    ids = sorted({e.ticket_id for _, e in escalations})
    tickets = await get_tickets(conn, ids, lock=True)
    batch = TicketBatch()
    notifying: list[tuple[str | None, Ticket, SlaEscalated]] = []
    for cid, escalated in escalations:
        token = correlation_id.set(cid)
        try:
            ticket = tickets.get(escalated.ticket_id)
            if ticket is not None and ticket.status in OPEN_STATUSES:
                for change in escalate(ticket, escalated, datetime.now(UTC)):
                    await batch.add(conn, change)
                if _NOTIFY & set(escalated.actions):
                    notifying.append((cid, ticket, escalated))
        finally:
            correlation_id.reset(token)
    await batch.flush(conn)
    if not notifying:
        return
    staff = await queue_staff(conn, [t.queue_id for _, t, _ in notifying])
    for cid, ticket, escalated in notifying:
        token = correlation_id.set(cid)
        try:
            queue = ticket.queue_id
            people = staff.get(queue or "", QueueStaff())
            found = notifications.escalation(ticket.id, queue, escalated, people)
            known = await known_notifications(conn, [n.id for n in found])
            # Their events take this escalation's correlation id, as its ticket changes did.
            await write_notifications(conn, [n for n in found if n.id not in known], by_email=True)
        finally:
            correlation_id.reset(token)
