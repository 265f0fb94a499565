"""SLA's copy of customers' segments (`sla_customer_segments`, from feedback's key-account
registry): stored only forward, read when a ticket opens."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import CustomerSegmentChanged


async def store_segment(conn: AsyncConnection, change: CustomerSegmentChanged) -> None:
    """A version not above the stored one (an older event delivered late) changes nothing."""
    await conn.execute(
        text(
            "INSERT INTO sla_customer_segments (customer_id, segment, source, version) "
            "VALUES (:id, :segment, :source, :version) "
            "ON CONFLICT (customer_id) DO UPDATE SET segment = EXCLUDED.segment, "
            "  source = EXCLUDED.source, version = EXCLUDED.version, updated_at = now() "
            "WHERE sla_customer_segments.version < EXCLUDED.version"
        ),
        {
            "id": change.customer_id,
            "segment": change.segment,
            "source": change.source,
            "version": change.version,
        },
    )


async def registered_segment(conn: AsyncConnection, customer_id: uuid.UUID) -> str | None:
    """The customer's segment in the registry (None: none, or never heard of)."""
    row = (
        await conn.execute(
            text("SELECT segment FROM sla_customer_segments WHERE customer_id = :id"),
            {"id": customer_id},
        )
    ).first()
    return None if row is None else row.segment
