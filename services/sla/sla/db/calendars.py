"""The sla_calendars rows the API reads and changes (the in-process copy the consumer reads is
`sla.db.config`'s): each change bumps the calendar's revision."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from sla.db.config import dump
from sla.domain.definitions import CalendarDoc

_ALL = text("SELECT id, body, revision, updated_at FROM sla_calendars ORDER BY id")
_ONE = text("SELECT id, body, revision, updated_at FROM sla_calendars WHERE id = :id")
_LOCK = text("SELECT id, body, revision, updated_at FROM sla_calendars WHERE id = :id FOR UPDATE")
_INSERT = text(
    "INSERT INTO sla_calendars (id, body) VALUES (:id, CAST(:body AS jsonb)) "
    "RETURNING id, body, revision, updated_at"
)
_UPDATE = text(
    "UPDATE sla_calendars SET body = CAST(:body AS jsonb), revision = revision + 1, "
    "updated_at = now() WHERE id = :id RETURNING id, body, revision, updated_at"
)
_EXISTS = text("SELECT EXISTS (SELECT 1 FROM sla_calendars WHERE id = :id)")
_IN_USE = text("SELECT EXISTS (SELECT 1 FROM sla_policies WHERE body->>'calendar_id' = :id)")
_DELETE = text("DELETE FROM sla_calendars WHERE id = :id")


async def all_calendars(conn: AsyncConnection) -> list[Row[Any]]:
    """Every calendar (id, body, revision, updated_at) in id order."""
    return list((await conn.execute(_ALL)).all())


async def get_calendar(conn: AsyncConnection, calendar_id: str) -> Row[Any] | None:
    return (await conn.execute(_ONE, {"id": calendar_id})).first()


async def lock_calendar(conn: AsyncConnection, calendar_id: str) -> Row[Any] | None:
    """The calendar, locked until the transaction ends (a read-modify-write of its body)."""
    return (await conn.execute(_LOCK, {"id": calendar_id})).first()


async def create_calendar(
    conn: AsyncConnection, calendar_id: str, doc: CalendarDoc
) -> Row[Any] | None:
    """None when a calendar with this id exists (the transaction is then failed: roll it back)."""
    try:
        result = await conn.execute(_INSERT, {"id": calendar_id, "body": dump(doc)})
    except sa_exc.IntegrityError:
        return None
    return result.one()


async def update_calendar(
    conn: AsyncConnection, calendar_id: str, doc: CalendarDoc
) -> Row[Any] | None:
    """The calendar with its new body and next revision; None when there is no such calendar."""
    return (await conn.execute(_UPDATE, {"id": calendar_id, "body": dump(doc)})).first()


async def calendar_exists(conn: AsyncConnection, calendar_id: str) -> bool:
    return bool((await conn.execute(_EXISTS, {"id": calendar_id})).scalar())


async def calendar_in_use(conn: AsyncConnection, calendar_id: str) -> bool:
    """Whether a policy (any of its versions, active or not) counts on this calendar."""
    return bool((await conn.execute(_IN_USE, {"id": calendar_id})).scalar())


async def delete_calendar(conn: AsyncConnection, calendar_id: str) -> bool:
    """False when there was no such calendar."""
    return (await conn.execute(_DELETE, {"id": calendar_id})).rowcount != 0
