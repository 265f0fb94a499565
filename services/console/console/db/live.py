"""The live stream's look at a session: does it still hold? Read only: an open stream alone
does not keep a session from idling out (only the pages' own requests do)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from console.db.sessions import session_hash


async def session_active(conn: AsyncConnection, cookie: str, *, idle_s: float) -> bool:
    row = await conn.execute(
        text(
            "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.id_hash = :h AND s.expires_at > now() "
            "AND s.last_seen_at > now() - make_interval(secs => :idle) AND NOT u.disabled"
        ),
        {"h": session_hash(cookie), "idle": idle_s},
    )
    return row.first() is not None
