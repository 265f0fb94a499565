"""Canned responses: supervisors create, change and remove them per queue and language; agents
list those of the queues they serve (supervisors every one). Placeholders are checked when one
is stored: only {customer_name}, {ticket_number} and {agent_name} are filled in."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ccshared.auth import Principal
from ccshared.ids import uuid7
from ccshared.problems import NotFound
from router.db import canned as db
from router.db.tickets import queue_exists
from router.domain import conversation
from router.handlers.tickets import field_problem


async def list_canned(
    engine: AsyncEngine, user: Principal, *, queue_id: str | None, language: str | None
) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await db.list_canned(
            conn,
            queue_id=queue_id,
            language=language,
            agent_id=None if user.is_supervisor else user.subject,
        )


async def _checked(conn: AsyncConnection, queue_id: str, body: str) -> None:
    if not await queue_exists(conn, queue_id):
        raise field_problem("body.queue_id", f"no queue {queue_id}")
    unknown = conversation.unknown_placeholders(body)
    if unknown:
        known = ", ".join(f"{{{p}}}" for p in conversation.PLACEHOLDERS)
        names = ", ".join(f"{{{p}}}" for p in unknown)
        raise field_problem("body.body", f"unknown placeholder {names} (known: {known})")


async def create_canned(
    engine: AsyncEngine, user: Principal, *, queue_id: str, language: str, title: str, body: str
) -> dict[str, Any]:
    async with engine.begin() as conn:
        await _checked(conn, queue_id, body)
        return await db.insert_canned(
            conn,
            uuid7(),
            queue_id=queue_id,
            language=language,
            title=title,
            body=body,
            created_by=user.actor,
        )


async def update_canned(
    engine: AsyncEngine,
    canned_id: uuid.UUID,
    *,
    queue_id: str,
    language: str,
    title: str,
    body: str,
) -> dict[str, Any]:
    async with engine.begin() as conn:
        await _checked(conn, queue_id, body)
        changed = await db.update_canned(
            conn, canned_id, queue_id=queue_id, language=language, title=title, body=body
        )
    if changed is None:
        raise NotFound(f"No canned response {canned_id}.")
    return changed


async def delete_canned(engine: AsyncEngine, canned_id: uuid.UUID) -> None:
    async with engine.begin() as conn:
        if not await db.delete_canned(conn, canned_id):
            raise NotFound(f"No canned response {canned_id}.")
