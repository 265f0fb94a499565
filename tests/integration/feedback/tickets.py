"""Router and intake events as the feedback service receives them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from ccshared.events.payloads import (
    ContactReceived,
    TicketClosed,
    TicketOpened,
    TicketReopened,
    TicketReplied,
    TicketResolved,
)


def opened(
    ticket_id: uuid.UUID,
    customer_id: uuid.UUID,
    at: datetime,
    *,
    channel: str = "email",
    category: str = "billing",
    language: str | None = "en",
    queue_id: str = "billing",
    received_at: datetime | None = None,
) -> TicketOpened:
    return TicketOpened(
        ticket_id=ticket_id,
        customer_id=customer_id,
        channel=channel,  # type: ignore[arg-type]
        category=category,
        priority="normal",
        language=language,
        queue_id=queue_id,
        opened_at=at,
        received_at=received_at,
    )


def replied(ticket_id: uuid.UUID, at: datetime, agent: str = "a1") -> TicketReplied:
    return TicketReplied(
        ticket_id=ticket_id, agent_id=agent, channel="email", first_response=True, at=at
    )


def resolved(
    ticket_id: uuid.UUID,
    customer_id: uuid.UUID,
    opened_at: datetime,
    at: datetime,
    *,
    channel: str = "email",
    category: str = "billing",
    queue_id: str = "billing",
    agent: str = "a1",
    language: str | None = "en",
    code: str = "solved",
) -> TicketResolved:
    return TicketResolved(
        ticket_id=ticket_id,
        customer_id=customer_id,
        agent_id=agent,
        owner_agent_id=agent,
        channel=channel,  # type: ignore[arg-type]
        queue_id=queue_id,
        category=category,
        priority="normal",
        language=language,
        resolution_code=code,
        first_contact_resolution=True,
        opened_at=opened_at,
        resolved_at=at,
    )


def reopened(ticket_id: uuid.UUID, at: datetime) -> TicketReopened:
    return TicketReopened(ticket_id=ticket_id, actor="customer", at=at)


def closed(ticket_id: uuid.UUID, at: datetime, reason: str) -> TicketClosed:
    return TicketClosed(ticket_id=ticket_id, actor="agent", reason=reason, at=at)


def contact(customer_id: uuid.UUID, at: datetime, channel: str = "email") -> ContactReceived:
    return ContactReceived(
        contact_id=uuid.uuid4(),
        customer_id=customer_id,
        channel=channel,  # type: ignore[arg-type]
        external_id=uuid.uuid4().hex,
        received_at=at,
    )


def ticket_at(minutes_ago: float, now: datetime) -> datetime:
    return now - timedelta(minutes=minutes_ago)
