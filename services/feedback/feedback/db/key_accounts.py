"""Key accounts and their call-back schedule: the API's reads and changes, and the scheduler's
claims of due call-backs (FOR UPDATE SKIP LOCKED, so replicas share them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import update_row
from ccshared.events import new_event
from ccshared.outbox import enqueue
from feedback.domain.key_accounts import segment_changed

_COLUMNS = (
    "customer_id, name, relationship_started_at, channel, language, active, next_callback_at, "
    "created_at, updated_at"
)
_SELECT = "SELECT " + _COLUMNS + " FROM key_accounts"  # noqa: S608 - fixed column names
_RETURNING = " RETURNING " + _COLUMNS
_UPDATABLE = (
    "name",
    "relationship_started_at",
    "channel",
    "language",
    "active",
    "next_callback_at",
)


async def create_key_account(
    conn: AsyncConnection, values: dict[str, Any]
) -> dict[str, Any] | None:
    """None when the customer is a key account already."""
    row = await conn.execute(
        text(
            "INSERT INTO key_accounts (customer_id, name, relationship_started_at, channel, "  # noqa: S608 - fixed column names
            " language, active, next_callback_at) VALUES (:customer_id, :name, "
            " :relationship_started_at, :channel, :language, :active, :next_callback_at) "
            "ON CONFLICT DO NOTHING" + _RETURNING
        ),
        values,
    )
    found = row.mappings().first()
    return None if found is None else dict(found)


async def get_key_account(
    conn: AsyncConnection, customer_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    sql = _SELECT + " WHERE customer_id = :id" + (" FOR UPDATE" if for_update else "")
    found = (await conn.execute(text(sql), {"id": customer_id})).mappings().first()
    return None if found is None else dict(found)


async def list_key_accounts(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(text(_SELECT + " ORDER BY name, customer_id"))
    return [dict(r) for r in rows.mappings()]


async def update_key_account(
    conn: AsyncConnection, customer_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any] | None:
    return await update_row(
        conn,
        "key_accounts",
        ("customer_id", customer_id),
        changes,
        updatable=_UPDATABLE,
        returning=_COLUMNS,
    )


async def delete_key_account(conn: AsyncConnection, customer_id: uuid.UUID) -> bool:
    row = await conn.execute(
        text("DELETE FROM key_accounts WHERE customer_id = :id RETURNING 1"), {"id": customer_id}
    )
    return row.first() is not None


async def callbacks_of(conn: AsyncConnection, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT follow_up_id, due_at, requested_at FROM key_account_callbacks "
            "WHERE customer_id = :id ORDER BY due_at"
        ),
        {"id": customer_id},
    )
    return [dict(r) for r in rows.mappings()]


async def publish_segment(
    conn: AsyncConnection, customer_id: uuid.UUID, active: bool | None
) -> None:
    """In the transaction that changed the key account: the customer's segment now (`active`
    None: the account was removed) with the customer's next version, through the outbox. The
    version row is locked until commit, so two changes of one customer number in commit order."""
    version = (
        await conn.execute(
            text(
                "INSERT INTO customer_segment_versions (customer_id, version) VALUES (:id, 1) "
                "ON CONFLICT (customer_id) DO UPDATE SET "
                "version = customer_segment_versions.version + 1, updated_at = now() "
                "RETURNING version"
            ),
            {"id": customer_id},
        )
    ).scalar_one()
    payload = segment_changed(customer_id, active, int(version), datetime.now(UTC))
    await enqueue(conn, new_event(payload, producer="feedback"))


_DUE_CALLBACKS = text(
    "SELECT customer_id, name, relationship_started_at, channel, language, next_callback_at "
    "FROM key_accounts WHERE active AND next_callback_at <= :now "
    "ORDER BY next_callback_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_RECORD_CALLBACK = text(
    "INSERT INTO key_account_callbacks (follow_up_id, customer_id, due_at, requested_at) "
    "VALUES (:id, :customer_id, :due_at, :now) ON CONFLICT DO NOTHING RETURNING 1"
)
_ADVANCE_CALLBACK = text(
    "UPDATE key_accounts SET next_callback_at = :next, updated_at = now() "
    "WHERE customer_id = :customer_id"
)


async def claim_due_callbacks(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Active key accounts whose call-back is due by `now`, the earliest first, locked for this
    transaction (rows another replica holds are skipped)."""
    rows = await conn.execute(_DUE_CALLBACKS, {"now": now, "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def record_callback(
    conn: AsyncConnection,
    follow_up_id: uuid.UUID,
    customer_id: uuid.UUID,
    due_at: datetime,
    now: datetime,
) -> bool:
    """False when this call-back (customer, due time) was requested already."""
    recorded = await conn.execute(
        _RECORD_CALLBACK,
        {"id": follow_up_id, "customer_id": customer_id, "due_at": due_at, "now": now},
    )
    return recorded.first() is not None


async def advance_callback(
    conn: AsyncConnection, customer_id: uuid.UUID, next_callback_at: datetime
) -> None:
    await conn.execute(_ADVANCE_CALLBACK, {"customer_id": customer_id, "next": next_callback_at})
