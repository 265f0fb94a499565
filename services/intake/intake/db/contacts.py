"""Reading stored contacts back (the writes are the batch writer's, `intake.db.writer`)."""

from __future__ import annotations

import uuid

import asyncpg


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
