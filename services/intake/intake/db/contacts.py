"""Reading stored contacts back, and linking them to the tickets the router placed them on
(the writes of new contacts are the batch writer's, `intake.db.writer`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_LINK = text("UPDATE contacts SET ticket_id = :ticket_id WHERE id = :contact_id")
_LINK_MANY = text(
    "UPDATE contacts c SET ticket_id = u.ticket_id "
    "FROM unnest(CAST(:contact_ids AS uuid[]), CAST(:ticket_ids AS uuid[])) "
    "AS u(contact_id, ticket_id) WHERE c.id = u.contact_id"
)


async def stored_contact(
    pool: asyncpg.Pool, contact_id: uuid.UUID, integration_id: uuid.UUID
) -> asyncpg.Record | None:
    """The contact as stored, if it is this integration's."""
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT id, customer_id, channel, external_id, received_at, accepted_at, ticket_id, body "
        "FROM contacts WHERE id = $1 AND integration_id = $2",
        contact_id,
        integration_id,
    )
    return row


async def link_to_ticket(
    conn: AsyncConnection, contact_id: uuid.UUID, ticket_id: uuid.UUID
) -> None:
    await conn.execute(_LINK, {"ticket_id": ticket_id, "contact_id": contact_id})


async def link_to_tickets(
    conn: AsyncConnection, tickets_by_contact: Mapping[uuid.UUID, uuid.UUID]
) -> None:
    """Each contact to its ticket, in one statement."""
    await conn.execute(
        _LINK_MANY,
        {"contact_ids": list(tickets_by_contact), "ticket_ids": list(tickets_by_contact.values())},
    )
