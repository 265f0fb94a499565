"""Webhook subscriptions per channel, the deliveries owed to them and each attempt made."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import update_row
from ccshared.ids import uuid7

SUBSCRIPTION_COLUMNS = "id, channel, url, description, active, created_at, updated_at"

_QUEUE_DELIVERIES = text(
    "INSERT INTO webhook_deliveries (id, subscription_id, survey_id, event_id, body, "
    " next_attempt_at) "
    "SELECT gen_random_uuid(), id, :survey_id, :event_id, :body, :now "
    "FROM webhook_subscriptions WHERE channel = :channel AND active"
)


async def queue_deliveries(
    conn: AsyncConnection,
    *,
    channel: str,
    survey_id: uuid.UUID,
    event_id: uuid.UUID,
    body: str,
    now: datetime,
) -> None:
    """One delivery per active subscription of the channel, in the sender's transaction."""
    await conn.execute(
        _QUEUE_DELIVERIES,
        {
            "survey_id": survey_id,
            "event_id": event_id,
            "body": body,
            "channel": channel,
            "now": now,
        },
    )


_CLAIM = text(
    "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = :lease_until "
    "FROM webhook_subscriptions s "
    "WHERE s.id = d.subscription_id AND d.id IN ("
    "  SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= :now "
    "  ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED) "
    "RETURNING d.id, d.body, d.attempts, d.event_id, s.url, s.secret, s.active"
)


async def claim_due_deliveries(
    conn: AsyncConnection, now: datetime, lease_until: datetime, limit: int
) -> list[dict[str, Any]]:
    """Take due deliveries for one attempt. The lease moves them out of reach of other senders
    for the attempt's duration; a sender that dies mid-attempt leaves them due again after it."""
    rows = await conn.execute(_CLAIM, {"now": now, "lease_until": lease_until, "limit": limit})
    return [dict(r) for r in rows.mappings()]


_RECORD_ATTEMPT = text(
    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) "
    "VALUES (:id, :attempt, :at, :status_code, :error, :duration_ms) ON CONFLICT DO NOTHING"
)
_SETTLE = text(
    "UPDATE webhook_deliveries SET status = :status, last_status = :status_code, "
    " next_attempt_at = coalesce(:next_attempt_at, next_attempt_at), "
    " delivered_at = CASE WHEN :status = 'delivered' THEN :at ELSE delivered_at END "
    "WHERE id = :id"
)


async def record_attempt(
    conn: AsyncConnection,
    *,
    delivery_id: uuid.UUID,
    attempt: int,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    outcome: str,
    next_attempt_at: datetime | None,
) -> None:
    await conn.execute(
        _RECORD_ATTEMPT,
        {
            "id": delivery_id,
            "attempt": attempt,
            "at": at,
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
        },
    )
    await conn.execute(
        _SETTLE,
        {
            "id": delivery_id,
            "status": outcome,
            "status_code": status_code,
            "next_attempt_at": next_attempt_at,
            "at": at,
        },
    )


async def create_subscription(
    conn: AsyncConnection,
    *,
    channel: str,
    url: str,
    secret: str,
    description: str | None,
    active: bool,
) -> dict[str, Any]:
    row = await conn.execute(
        text(
            "INSERT INTO webhook_subscriptions (id, channel, url, secret, description, active) "
            "VALUES (:id, :channel, :url, :secret, :description, :active) "
            "RETURNING id, channel, url, description, active, created_at, updated_at"
        ),
        {
            "id": uuid7(),
            "channel": channel,
            "url": url,
            "secret": secret,
            "description": description,
            "active": active,
        },
    )
    return dict(row.mappings().one())


async def list_subscriptions(conn: AsyncConnection, channel: str | None) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions "  # noqa: S608
            "WHERE (CAST(:channel AS text) IS NULL OR channel = :channel) ORDER BY created_at, id"
        ),
        {"channel": channel},
    )
    return [dict(r) for r in rows.mappings()]


async def get_subscription(conn: AsyncConnection, sub_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.execute(
        text(f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = :id"),  # noqa: S608
        {"id": sub_id},
    )
    found = row.mappings().first()
    return None if found is None else dict(found)


_UPDATABLE = ("url", "secret", "description", "active")


async def update_subscription(
    conn: AsyncConnection, sub_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any] | None:
    return await update_row(
        conn,
        "webhook_subscriptions",
        ("id", sub_id),
        changes,
        updatable=_UPDATABLE,
        returning=SUBSCRIPTION_COLUMNS,
    )


async def delete_subscription(conn: AsyncConnection, sub_id: uuid.UUID) -> bool:
    row = await conn.execute(
        text("DELETE FROM webhook_subscriptions WHERE id = :id RETURNING 1"), {"id": sub_id}
    )
    return row.first() is not None


async def deliveries_of_survey(conn: AsyncConnection, survey_id: uuid.UUID) -> list[dict[str, Any]]:
    """Each delivery with its attempts, for the API and for support."""
    rows = await conn.execute(
        text(
            "SELECT d.id, d.subscription_id, d.event_id, d.status, d.attempts, d.last_status, "
            " d.created_at, d.delivered_at, d.next_attempt_at, "
            " coalesce(json_agg(json_build_object('attempt', a.attempt, 'at', a.at, "
            "   'status_code', a.status_code, 'error', a.error, 'duration_ms', a.duration_ms) "
            "   ORDER BY a.attempt) FILTER (WHERE a.attempt IS NOT NULL), '[]') AS attempt_log "
            "FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.delivery_id = d.id "
            "WHERE d.survey_id = :survey_id GROUP BY d.id ORDER BY d.created_at, d.id"
        ),
        {"survey_id": survey_id},
    )
    return [dict(r) for r in rows.mappings()]
