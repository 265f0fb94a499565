"""router.tickets: ticket facts for the KPIs, and the survey scheduled when a ticket resolves."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.consumer import Handler, each_event
from ccshared.events import Envelope
from ccshared.events.payloads import (
    TicketClosed,
    TicketOpened,
    TicketReopened,
    TicketReplied,
    TicketResolved,
)
from ccshared.service import ConsumerSpec, Runtime
from feedback.db.contacts import customer_wrote_between
from feedback.db.facts import FactChanges, lock_customer, rollup_at_end
from feedback.db.surveys import cancel_unsent, schedule_for_resolved_ticket, suppress_unsent
from feedback.domain.surveys import is_spam_or_duplicate
from feedback.settings import FeedbackSettings


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def ticket_events(runtime: Runtime) -> Handler:
    settings = runtime.settings
    assert isinstance(settings, FeedbackSettings)
    policy = settings.survey_policy()
    fcr_window = timedelta(days=settings.observed_fcr_days)

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        facts = FactChanges(conn)
        if isinstance(payload, TicketOpened):
            before = await facts.current(payload.ticket_id)
            await facts.update(
                payload.ticket_id,
                {
                    "customer_id": payload.customer_id,
                    "channel": before["channel"] or payload.channel,
                    "category": before["category"] or payload.category,
                    "language": before["language"] or payload.language,
                    "queue_id": before["queue_id"] or payload.queue_id,
                    "opened_at": _earliest(before["opened_at"], payload.opened_at),
                    "customer_wrote_at": _earliest(
                        before["customer_wrote_at"], payload.received_at, payload.opened_at
                    ),
                },
                before,
            )
        elif isinstance(payload, TicketReplied) and payload.first_response:
            before = await facts.current(payload.ticket_id)
            await facts.update(
                payload.ticket_id,
                {"first_response_at": _earliest(before["first_response_at"], payload.at)},
                before,
            )
        elif isinstance(payload, TicketResolved):
            await lock_customer(conn, payload.customer_id)
            # A new contact from the customer within the observed-FCR window after this
            # resolution.
            recontacted = await customer_wrote_between(
                conn, payload.customer_id, payload.resolved_at, payload.resolved_at + fcr_window
            )
            after = await facts.update(
                payload.ticket_id,
                {
                    "customer_id": payload.customer_id,
                    "channel": payload.channel,
                    "queue_id": payload.queue_id,
                    "agent_id": payload.agent_id or payload.owner_agent_id,
                    "category": payload.category,
                    "language": payload.language,
                    "resolution_code": payload.resolution_code,
                    "opened_at": payload.opened_at,
                    "resolved_at": payload.resolved_at,
                    "recontacted": recontacted,
                },
            )
            await schedule_for_resolved_ticket(conn, after, policy)
        elif isinstance(payload, TicketReopened):
            # Survey row before fact row, the order the scheduler and answers lock them in.
            await cancel_unsent(conn, payload.ticket_id)
            await facts.update(payload.ticket_id, {"reopened": True})
        elif isinstance(payload, TicketClosed):
            if is_spam_or_duplicate(payload.reason):
                await suppress_unsent(conn, payload.ticket_id, "spam_or_duplicate")
            await facts.update(payload.ticket_id, {"close_reason": payload.reason})
        await facts.flush()

    return handle


def tickets_consumer(settings: FeedbackSettings) -> ConsumerSpec:
    return ConsumerSpec(
        name="tickets",
        topics=[settings.tickets_topic],
        handler=ticket_events,
        batch_handler=lambda runtime: each_event(ticket_events(runtime), rollup_at_end),
        event_types=frozenset(
            {
                "ticket.opened",
                "ticket.replied",
                "ticket.resolved",
                "ticket.reopened",
                "ticket.closed",
            }
        ),
    )
