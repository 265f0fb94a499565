"""Customers' contacts as intake reports them (intake.contacts): the reply windows of messaging
channels read them, and observed FCR (a customer writing again soon after a resolution)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_REMEMBER = text(
    "INSERT INTO customer_contacts (contact_id, customer_id, channel, received_at) "
    "VALUES (:contact_id, :customer_id, :channel, :received_at) ON CONFLICT DO NOTHING"
)
_WROTE_BETWEEN = text(
    "SELECT EXISTS (SELECT 1 FROM customer_contacts WHERE customer_id = :customer_id "
    " AND received_at > :after AND received_at <= :until)"
)


async def remember_contact(
    conn: AsyncConnection,
    contact_id: uuid.UUID,
    customer_id: uuid.UUID,
    channel: str,
    received_at: datetime,
) -> None:
    """Once per contact: a redelivered event changes nothing."""
    await conn.execute(
        _REMEMBER,
        {
            "contact_id": contact_id,
            "customer_id": customer_id,
            "channel": channel,
            "received_at": received_at,
        },
    )


async def customer_wrote_between(
    conn: AsyncConnection, customer_id: uuid.UUID, after: datetime, until: datetime
) -> bool:
    """Whether a contact of the customer was received in (after, until]."""
    wrote = await conn.execute(
        _WROTE_BETWEEN, {"customer_id": customer_id, "after": after, "until": until}
    )
    return bool(wrote.scalar_one())
