"""Corrections of tickets' classification: stored with the text the model saw, read back as
training labels (the latest correction of each ticket)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class Correction:
    ticket_id: uuid.UUID
    text: str
    category: str
    priority: str
    previous_category: str
    previous_priority: str
    model_version: str | None
    corrected_by: str
    reason: str | None = None


async def first_contact_text(conn: AsyncConnection, ticket_id: uuid.UUID) -> str:
    """The first contact's subject and text, as classification read them."""
    row = (
        await conn.execute(
            text(
                "SELECT subject, text FROM ticket_contacts WHERE ticket_id = :t "
                "ORDER BY received_at, contact_id LIMIT 1"
            ),
            {"t": ticket_id},
        )
    ).first()
    if row is None:
        return ""
    body = row.text or ""
    return f"{row.subject}\n{body}" if row.subject else body


async def add_correction(conn: AsyncConnection, c: Correction) -> None:
    await conn.execute(
        text(
            "INSERT INTO classification_corrections (ticket_id, text, category, priority, "
            "previous_category, previous_priority, model_version, corrected_by, reason) "
            "VALUES (:ticket_id, :text, :category, :priority, :previous_category, "
            ":previous_priority, :model_version, :corrected_by, :reason)"
        ),
        {
            "ticket_id": c.ticket_id,
            "text": c.text,
            "category": c.category,
            "priority": c.priority,
            "previous_category": c.previous_category,
            "previous_priority": c.previous_priority,
            "model_version": c.model_version,
            "corrected_by": c.corrected_by,
            "reason": c.reason,
        },
    )


async def training_labels(conn: AsyncConnection) -> list[Correction]:
    """The latest correction of every ticket with a text, oldest ticket first."""
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (ticket_id) ticket_id, text, category, priority, "
            "previous_category, previous_priority, model_version, corrected_by, reason "
            "FROM classification_corrections WHERE text <> '' "
            "ORDER BY ticket_id, id DESC"
        )
    )
    return [Correction(**row._mapping) for row in rows]
