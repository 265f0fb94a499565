"""A user's own notifications: the page of them (unread only, if asked) and marking one read.
Another user's notification is a 404, like one that does not exist. A supervisor's own e-mail
opt-in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.problems import NotFound
from router.db import notifications as db
from router.handlers.tickets import decode_cursor, encode_cursor, field_problem


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


async def settings_of(engine: AsyncEngine, user: Principal) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await db.get_settings(conn, user.subject)


async def put_settings(
    engine: AsyncEngine, user: Principal, *, email: str | None, email_opt_in: bool
) -> dict[str, Any]:
    """A supervisor's or manager's own choice: escalations and follow-ups by e-mail too. Opting
    in needs an address (a 422 naming body.email without one)."""
    if email_opt_in and not email:
        raise field_problem("body.email", "an address is needed to get notifications by e-mail")
    async with engine.begin() as conn:
        await db.put_settings(conn, user.subject, email=email, email_opt_in=email_opt_in)
    return {"email": email, "email_opt_in": email_opt_in}
