"""Notification rows: writing many with their `notification.created` events in one statement,
a recipient's page of them, marking one read; and who a queue's supervisors and managers are."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import array_params, insert_from_arrays, one_statement
from ccshared.events import Envelope, new_event
from ccshared.logging import correlation_id
from ccshared.outbox import OUTBOX_PART, outbox_params
from router.domain.notifications import Notification, QueueStaff, email_request
from router.domain.tickets import ROUTER

NOTIFICATION_COLUMNS = (
    ("id", "uuid"),
    ("recipient", "text"),
    ("kind", "text"),
    ("ticket_id", "uuid"),
    ("text", "text"),
    ("data", "jsonb"),
    ("created_at", "timestamptz"),
)
INSERT_NOTIFICATIONS = insert_from_arrays("notifications", NOTIFICATION_COLUMNS, prefix="n_")
_WRITE = text(one_statement(("notifications", INSERT_NOTIFICATIONS), OUTBOX_PART))


def notification_row(n: Notification) -> tuple[Any, ...]:
    return (
        n.id,
        n.recipient,
        n.kind,
        n.ticket_id,
        n.text,
        orjson.dumps(n.data).decode(),
        n.created_at,
    )


def notification_params(notifications: Sequence[Notification]) -> dict[str, list[Any]]:
    """The `n_` arrays of `INSERT_NOTIFICATIONS` (a part of someone else's statement)."""
    rows = [notification_row(n) for n in notifications]
    return array_params(NOTIFICATION_COLUMNS, rows, prefix="n_")


def notification_events(notifications: Sequence[Notification]) -> list[Envelope]:
    cid = correlation_id.get()
    return [new_event(n.event(), producer=ROUTER, correlation_id=cid) for n in notifications]


async def write_notifications(
    conn: AsyncConnection, notifications: Sequence[Notification], *, by_email: bool = False
) -> None:
    """The notifications and their events, in one statement (nothing if there are none);
    `by_email`: and an e-mail request for each recipient who opted in."""
    if not notifications:
        return
    events = notification_events(notifications)
    if by_email:
        addresses = await email_addresses(conn, [n.recipient for n in notifications])
        cid = correlation_id.get()
        events += [
            new_event(email_request(n, addresses[n.recipient]), producer=ROUTER, correlation_id=cid)
            for n in notifications
            if n.recipient in addresses
        ]
    await conn.execute(_WRITE, {**notification_params(notifications), **outbox_params(events)})


async def email_addresses(conn: AsyncConnection, recipients: Sequence[str]) -> dict[str, str]:
    """The e-mail address of each of `recipients` who opted in to notifications by e-mail."""
    rows = await conn.execute(
        text(
            "SELECT user_id, email FROM notification_settings WHERE user_id = ANY(:ids) "
            "AND email_opt_in AND email IS NOT NULL"
        ),
        {"ids": sorted(set(recipients))},
    )
    return {r.user_id: r.email for r in rows}


async def get_settings(conn: AsyncConnection, user_id: str) -> dict[str, Any]:
    row = (
        await conn.execute(
            text("SELECT email, email_opt_in FROM notification_settings WHERE user_id = :u"),
            {"u": user_id},
        )
    ).first()
    return {"email": None, "email_opt_in": False} if row is None else dict(row._mapping)


async def put_settings(
    conn: AsyncConnection, user_id: str, *, email: str | None, email_opt_in: bool
) -> None:
    await conn.execute(
        text(
            "INSERT INTO notification_settings (user_id, email, email_opt_in) "
            "VALUES (:u, :e, :o) ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, "
            "email_opt_in = EXCLUDED.email_opt_in, updated_at = now()"
        ),
        {"u": user_id, "e": email, "o": email_opt_in},
    )


async def known_notifications(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `ids` already stored (a redelivered event's)."""
    if not ids:
        return set()
    rows = await conn.execute(
        text("SELECT id FROM notifications WHERE id = ANY(:ids)"), {"ids": list(ids)}
    )
    return {r.id for r in rows}


_FIELDS = "id, kind, ticket_id, text, data, created_at, read_at"


async def page_of_notifications(
    conn: AsyncConnection,
    recipient: str,
    *,
    unread: bool,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """The recipient's own, newest first, up to `limit`; only unread ones if `unread`."""
    where = ["recipient = :r"]
    params: dict[str, Any] = {"r": recipient, "limit": limit}
    if unread:
        where.append("read_at IS NULL")
    if before is not None:
        where.append("(created_at, id) < (:at, :last)")
        params.update(at=before[0], last=before[1])
    rows = await conn.execute(
        text(
            f"SELECT {_FIELDS} FROM notifications WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        params,
    )
    return [
        {**r._mapping, "data": orjson.loads(r.data) if isinstance(r.data, str) else r.data}
        for r in rows
    ]


async def mark_read(
    conn: AsyncConnection, notification_id: uuid.UUID, recipient: str, at: datetime
) -> dict[str, Any] | None:
    """Marks the recipient's own notification read (kept as first read); None if it is not
    theirs or does not exist."""
    row = (
        await conn.execute(
            text(
                "UPDATE notifications SET read_at = coalesce(read_at, :at) "  # noqa: S608
                f"WHERE id = :id AND recipient = :r RETURNING {_FIELDS}"
            ),
            {"id": notification_id, "r": recipient, "at": at},
        )
    ).first()
    if row is None:
        return None
    return {
        **row._mapping,
        "data": orjson.loads(row.data) if isinstance(row.data, str) else row.data,
    }


async def queue_staff(
    conn: AsyncConnection, queue_ids: Sequence[str | None]
) -> dict[str, QueueStaff]:
    """Each named queue's supervisors and managers."""
    ids = sorted({q for q in queue_ids if q})
    if not ids:
        return {}
    rows = await conn.execute(
        text("SELECT id, supervisors, managers FROM queues WHERE id = ANY(:ids)"), {"ids": ids}
    )
    return {r.id: QueueStaff(tuple(r.supervisors), tuple(r.managers)) for r in rows}
