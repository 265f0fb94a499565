"""Storage of outbound messages: storing what the router asks to deliver (once per message id),
claiming due messages (safe with several replicas), recording each attempt's outcome with its
message.delivery_changed event in one statement, integrations' outbound registrations and
their delivery reports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.db import one_statement
from ccshared.events import Envelope
from ccshared.events.payloads import MessageOutbound, NotificationEmailRequested
from ccshared.outbox import outbox_arrays, outbox_part, outbox_tuples
from intake.domain.outbound import (
    NOTIFICATION,
    CustomerContact,
    DeliveryState,
    IntegrationOutbound,
    OutboundMessage,
)

# The customer's contact the message answers: the one the router named, else the ticket's
# latest on the message's channel, else the customer's latest on it.
_STORE = text("""
INSERT INTO outbound_messages
    (id, ticket_id, customer_id, channel, kind, reply_to_contact_id, integration_id, payload)
SELECT u.id, u.ticket_id, u.customer_id, u.channel, u.kind, coalesce(named.id, latest.id),
       coalesce(named.integration_id, latest.integration_id), CAST(u.payload AS json)
FROM unnest(CAST(:ids AS uuid[]), CAST(:ticket_ids AS uuid[]), CAST(:customer_ids AS uuid[]),
            CAST(:channels AS text[]), CAST(:kinds AS text[]), CAST(:contact_ids AS uuid[]),
            CAST(:payloads AS text[]))
     AS u(id, ticket_id, customer_id, channel, kind, contact_id, payload)
LEFT JOIN contacts named ON named.id = u.contact_id
LEFT JOIN LATERAL (
    SELECT x.id, x.integration_id FROM contacts x
    WHERE u.contact_id IS NULL AND x.customer_id = u.customer_id AND x.channel = u.channel
    ORDER BY (x.ticket_id = u.ticket_id) DESC NULLS LAST, x.received_at DESC
    LIMIT 1
) latest ON true
ON CONFLICT (id) DO NOTHING
""")


async def store_outbound(conn: AsyncConnection, messages: Sequence[MessageOutbound]) -> None:
    """Stores each message once, queued for delivery (the same message id again is ignored)."""
    unique = list({m.message_id: m for m in messages}.values())
    if not unique:
        return
    await conn.execute(
        _STORE,
        {
            "ids": [m.message_id for m in unique],
            "ticket_ids": [m.ticket_id for m in unique],
            "customer_ids": [m.customer_id for m in unique],
            "channels": [m.channel for m in unique],
            "kinds": [m.kind for m in unique],
            "contact_ids": [m.reply_to_contact_id for m in unique],
            "payloads": [m.model_dump_json() for m in unique],
        },
    )


_STORE_NOTIFICATIONS = text("""
INSERT INTO outbound_messages (id, ticket_id, channel, kind, payload)
SELECT u.id, u.ticket_id, 'email', :kind, CAST(u.payload AS json)
FROM unnest(CAST(:ids AS uuid[]), CAST(:ticket_ids AS uuid[]), CAST(:payloads AS text[]))
     AS u(id, ticket_id, payload)
ON CONFLICT (id) DO NOTHING
""")


async def store_notification_emails(
    conn: AsyncConnection, requests: Sequence[NotificationEmailRequested]
) -> None:
    """Stores each notification e-mail once (by notification id), queued for delivery: an
    outbound message of kind `notification`, with no customer, contact or integration."""
    unique = list({r.notification_id: r for r in requests}.values())
    if not unique:
        return
    await conn.execute(
        _STORE_NOTIFICATIONS,
        {
            "kind": NOTIFICATION,
            "ids": [r.notification_id for r in unique],
            "ticket_ids": [r.ticket_id for r in unique],
            "payloads": [r.model_dump_json() for r in unique],
        },
    )


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A due message claimed for attempt number `message.attempts`, with what delivering it
    needs."""

    message: OutboundMessage
    customer_id: uuid.UUID | None
    contact: CustomerContact | None
    outbound: IntegrationOutbound | None
    last_inbound_at: datetime | None
    created_at: str


# Claims up to $1 due messages: each one's attempt is counted, and its next attempt moved past
# the lease ($2 s), in the claiming transaction, before anything is sent. So an attempt is sent
# at most once: a replica that dies mid-attempt leaves the message to be claimed again after
# the lease, as a new attempt (the receiver dedupes by the message id).
_CLAIM = """
WITH due AS (
    SELECT id FROM outbound_messages
    WHERE state = 'queued' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbound_messages m
    SET attempts = m.attempts + 1, next_attempt_at = now() + make_interval(secs => $2),
        updated_at = now()
    FROM due WHERE m.id = due.id
    RETURNING m.id, m.ticket_id, m.customer_id, m.channel, m.kind, m.reply_to_contact_id,
              m.integration_id, m.payload, m.attempts
)
SELECT m.*, c.external_id AS contact_external_id, c.channel AS contact_channel,
       c.received_at AS contact_received_at, c.body AS contact_body,
       o.url, o.signing_secret, o.mail_from,
       (SELECT max(l.received_at) FROM contacts l
        WHERE l.customer_id = m.customer_id AND l.channel = m.channel) AS last_inbound_at
FROM claimed m
LEFT JOIN contacts c ON c.id = m.reply_to_contact_id
LEFT JOIN integration_outbound o ON o.integration_id = m.integration_id
"""


async def claim_due(pool: asyncpg.Pool, limit: int, lease_s: float) -> list[ClaimedMessage]:
    rows = await pool.fetch(_CLAIM, limit, lease_s)
    return [_claimed(row) for row in rows]


def _claimed(row: asyncpg.Record) -> ClaimedMessage:
    payload = orjson.loads(row["payload"])
    message = OutboundMessage(
        id=row["id"],
        ticket_id=row["ticket_id"],
        channel=row["channel"],
        kind=row["kind"],
        text=payload["text"],
        html=payload.get("html"),
        subject=payload.get("subject"),
        language=payload.get("language"),
        attempts=row["attempts"],
        to=payload.get("to") if row["kind"] == NOTIFICATION else None,
    )
    contact = None
    if row["reply_to_contact_id"] is not None and row["contact_body"] is not None:
        contact = _contact(row)
    outbound = None
    if row["url"] is not None or row["mail_from"] is not None:
        outbound = IntegrationOutbound(row["url"], row["signing_secret"], row["mail_from"])
    return ClaimedMessage(
        message=message,
        customer_id=row["customer_id"],
        contact=contact,
        outbound=outbound,
        last_inbound_at=row["last_inbound_at"],
        created_at=payload["created_at"],
    )


def _contact(row: asyncpg.Record) -> CustomerContact:
    body: dict[str, Any] = orjson.loads(row["contact_body"])
    channel = row["contact_channel"]
    channel_data: dict[str, Any] = body.get(channel) or {}
    email = body.get("email") or {}
    sender = email.get("from") or {}
    customer = body.get("customer") or {}
    return CustomerContact(
        id=row["reply_to_contact_id"],
        channel=channel,
        external_id=row["contact_external_id"],
        received_at=row["contact_received_at"],
        subject=body.get("subject"),
        email_address=sender.get("address") or customer.get("email"),
        email_name=sender.get("name") or customer.get("name"),
        email_message_id=email.get("message_id"),
        email_references=tuple(email.get("references") or ()),
        channel_data={k: v for k, v in channel_data.items() if k not in ("html", "messages")},
    )


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """The outcome of attempt `attempt` of a message, and the event announcing it (None: no
    event, e.g. queued again for a retry)."""

    message_id: uuid.UUID
    attempt: int
    state: DeliveryState
    next_attempt_at: datetime | None
    reason: str | None
    provider_message_id: str | None
    target: str | None
    event: Envelope | None


_RECORD_COLUMNS = """
    UPDATE outbound_messages m
    SET state = x.state, next_attempt_at = coalesce(x.next_at, m.next_attempt_at),
        reason = x.reason, provider_message_id = coalesce(x.provider_id, m.provider_message_id),
        target = coalesce(x.target, m.target), updated_at = now()
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::text[], $6::text[],
                $7::text[]) AS x(id, attempt, state, next_at, reason, provider_id, target)
    WHERE m.id = x.id AND m.attempts = x.attempt AND m.state = 'queued'
    RETURNING m.id
"""


def _record_sql(with_events: bool) -> str:
    if not with_events:
        return _RECORD_COLUMNS
    # An event goes out only with its recorded change: an attempt overtaken by another (its
    # lease ran out and the message was claimed again) records nothing and announces nothing.
    events = outbox_part(first_param=9, where="u.ord IN (SELECT ord FROM wanted)")[1]
    return one_statement(
        ("recorded", _RECORD_COLUMNS),
        (
            "wanted",
            "SELECT e.ord FROM unnest($8::uuid[]) WITH ORDINALITY AS e(message_id, ord) "
            "WHERE e.message_id IN (SELECT id FROM recorded)",
        ),
        ("events", events),
        ("", "SELECT id FROM recorded"),
    )


async def record_attempts(pool: asyncpg.Pool, records: Sequence[AttemptRecord]) -> set[uuid.UUID]:
    """Records each attempt's outcome, and its event in the outbox, in one statement (one
    transaction); returns the messages recorded."""
    if not records:
        return set()
    columns: list[Any] = [
        [r.message_id for r in records],
        [r.attempt for r in records],
        [r.state for r in records],
        [r.next_attempt_at for r in records],
        [r.reason for r in records],
        [r.provider_message_id for r in records],
        [r.target for r in records],
    ]
    announced = [r for r in records if r.event is not None]
    if not announced:
        rows = await pool.fetch(_record_sql(False), *columns)
        return {row["id"] for row in rows}
    events = [r.event for r in announced if r.event is not None]
    rows = await pool.fetch(
        _record_sql(True),
        *columns,
        [r.message_id for r in announced],
        *outbox_arrays(outbox_tuples(events)),
    )
    return {row["id"] for row in rows}


# --- outbound registrations -------------------------------------------------------------------


async def register_outbound(
    conn: asyncpg.Connection | asyncpg.Pool,
    integration_id: uuid.UUID,
    *,
    url: str | None = None,
    signing_secret: str | None = None,
    mail_from: str | None = None,
) -> None:
    """Sets what is given (None leaves it as it was)."""
    await conn.execute(
        "INSERT INTO integration_outbound (integration_id, url, signing_secret, mail_from) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (integration_id) DO UPDATE SET "
        "url = coalesce(EXCLUDED.url, integration_outbound.url), "
        "signing_secret = coalesce(EXCLUDED.signing_secret, integration_outbound.signing_secret),"
        " mail_from = coalesce(EXCLUDED.mail_from, integration_outbound.mail_from), "
        "updated_at = now()",
        integration_id,
        url,
        signing_secret,
        mail_from,
    )


async def outbound_of(
    conn: asyncpg.Connection | asyncpg.Pool, integration_id: uuid.UUID
) -> IntegrationOutbound | None:
    row = await conn.fetchrow(
        "SELECT url, signing_secret, mail_from FROM integration_outbound WHERE integration_id = $1",
        integration_id,
    )
    return None if row is None else IntegrationOutbound(row[0], row[1], row[2])


# --- delivery reports -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    id: uuid.UUID
    ticket_id: uuid.UUID
    state: DeliveryState
    attempts: int
    reason: str | None
    provider_message_id: str | None


async def delivery_of(
    conn: asyncpg.Connection | asyncpg.Pool,
    message_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> StoredDelivery | None:
    """The message, if the integration delivers it (another's is None, as a missing one)."""
    row = await conn.fetchrow(
        "SELECT id, ticket_id, state, attempts, reason, provider_message_id "
        "FROM outbound_messages WHERE id = $1 AND integration_id = $2"
        + (" FOR UPDATE" if for_update else ""),
        message_id,
        integration_id,
    )
    return None if row is None else StoredDelivery(*row)


async def set_reported_state(
    conn: asyncpg.Connection,
    message_id: uuid.UUID,
    state: DeliveryState,
    reason: str | None,
    provider_message_id: str | None,
    event: Envelope,
) -> None:
    """The reported state and its event, in the caller's transaction."""
    await conn.execute(
        one_statement(
            (
                "changed",
                "UPDATE outbound_messages SET state = $1, reason = coalesce($2, reason), "
                "provider_message_id = coalesce($3, provider_message_id), updated_at = now() "
                "WHERE id = $4 RETURNING id",
            ),
            ("events", outbox_part(first_param=5)[1]),
        ),
        state,
        reason,
        provider_message_id,
        message_id,
        *outbox_arrays(outbox_tuples([event])),
    )
