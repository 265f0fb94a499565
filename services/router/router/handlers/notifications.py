"""A user's own notifications: the page of them (unread only, if asked) and marking one read.
Another user's notification is a 404, like one that does not exist."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.problems import NotFound
from router.db import notifications as db
from router.handlers.tickets import decode_cursor, encode_cursor


async def page_of_notifications(
    engine: AsyncEngine, user: Principal, *, unread: bool, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first: a page and the next page's cursor (None: the last page)."""
    before = decode_cursor(cursor) if cursor else None
    async with engine.connect() as conn:
        found = await db.page_of_notifications(
            conn, user.subject, unread=unread, limit=limit + 1, before=before
        )
    page = found[:limit]
    more = len(found) > limit
    return page, encode_cursor(page[-1]["created_at"], page[-1]["id"]) if more else None


async def mark_read(
    engine: AsyncEngine, notification_id: uuid.UUID, user: Principal
) -> dict[str, Any]:
    async with engine.begin() as conn:
        found = await db.mark_read(conn, notification_id, user.subject, datetime.now(UTC))
    if found is None:
        raise NotFound(f"No notification {notification_id}.")
    return found
