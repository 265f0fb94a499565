"""A ticket's conversation in SQL: the customer's contacts (`ticket_contacts`) and the agents'
replies and notes (`ticket_messages`) read as one list ordered by (time, id); writing a reply
or a note; a reply's delivery state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from router.domain.conversation import Message

# Both tables as one list of messages, with the same columns. A contact's author is the
# customer, but a follow-up ticket's opening request (its id is the ticket's) is the router's;
# only replies have a delivery state.
_CONVERSATION = (
    "SELECT contact_id AS id, 'inbound' AS direction, 'contact' AS kind, "
    "  CASE WHEN contact_id = ticket_id THEN 'router' ELSE 'customer' END AS author, "
    "  channel, received_at AS at, subject, text, sender, attachments, "
    "  CAST(NULL AS uuid) AS canned_response_id, CAST(NULL AS uuid) AS reply_to_contact_id, "
    "  CAST('{}' AS text[]) AS mentions, CAST(NULL AS text) AS delivery_state, "
    "  CAST(NULL AS text) AS delivery_reason, CAST(NULL AS timestamptz) AS delivery_at, "
    "  CAST(NULL AS text) AS provider_message_id "
    "FROM ticket_contacts WHERE ticket_id = :t "
    "UNION ALL "
    "SELECT id, direction, kind, author, channel, created_at, NULL, text, NULL, NULL, "
    "  canned_response_id, reply_to_contact_id, mentions, delivery_state, delivery_reason, "
    "  delivery_at, provider_message_id "
    "FROM ticket_messages WHERE ticket_id = :t"
)


def _message(row: Row[Any]) -> dict[str, Any]:
    values = dict(row._mapping)
    values["mentions"] = list(values["mentions"] or [])
    values["attachments"] = values["attachments"] or []
    return values


async def page_of_messages(
    conn: AsyncConnection,
    ticket_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """Oldest first from after `after` (a message's time and id), up to `limit`."""
    where = "true"
    params: dict[str, Any] = {"t": ticket_id, "limit": limit}
    if after is not None:
        where = "(m.at, m.id) > (:at, :last)"
        params.update(at=after[0], last=after[1])
    rows = await conn.execute(
        text(
            f"SELECT * FROM ({_CONVERSATION}) m WHERE {where} "  # noqa: S608 - ours
            "ORDER BY m.at, m.id LIMIT :limit"
        ),
        params,
    )
    return [_message(r) for r in rows]


async def last_messages(
    conn: AsyncConnection, ticket_id: uuid.UUID, limit: int
) -> list[dict[str, Any]]:
    """The last `limit` messages of the conversation, oldest first."""
    rows = await conn.execute(
        text(
            f"SELECT * FROM (SELECT * FROM ({_CONVERSATION}) m "  # noqa: S608 - ours
            "ORDER BY m.at DESC, m.id DESC LIMIT :limit) last ORDER BY at, id"
        ),
        {"t": ticket_id, "limit": limit},
    )
    return [_message(r) for r in rows]


_INSERT = text(
    "INSERT INTO ticket_messages (id, ticket_id, direction, kind, author, channel, text, "
    "canned_response_id, reply_to_contact_id, mentions, delivery_state, delivery_at, created_at) "
    "VALUES (:id, :ticket_id, :direction, :kind, :author, :channel, :text, :canned, :reply_to, "
    ":mentions, :state, CASE WHEN CAST(:state AS text) IS NULL THEN NULL ELSE "
    "CAST(:at AS timestamptz) END, :at)"
)


async def insert_message(conn: AsyncConnection, message: Message) -> None:
    await conn.execute(
        _INSERT,
        {
            "id": message.id,
            "ticket_id": message.ticket_id,
            "direction": message.direction,
            "kind": message.kind,
            "author": message.author,
            "channel": message.channel,
            "text": message.text,
            "canned": message.canned_response_id,
            "reply_to": message.reply_to_contact_id,
            "mentions": list(message.mentions),
            "state": message.delivery_state,
            "at": message.created_at,
        },
    )


# A follow-up ticket's opening "contact" is the request itself (its id is the ticket's), not
# something the customer wrote: a reply answers the customer's last real contact.
_LAST_CONTACT = text(
    "SELECT contact_id, received_at, subject FROM ticket_contacts "
    "WHERE ticket_id = :t AND contact_id <> :t ORDER BY received_at DESC, contact_id DESC LIMIT 1"
)


async def last_contact(conn: AsyncConnection, ticket_id: uuid.UUID) -> Row[Any] | None:
    """The customer's last contact on the ticket (id, when, subject), or None."""
    return (await conn.execute(_LAST_CONTACT, {"t": ticket_id})).first()


_LOCK_REPLIES = text(
    "SELECT m.id, m.ticket_id, m.channel, m.delivery_state, t.owner_agent_id, "
    "t.assignee_agent_id "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:tickets AS uuid[])) AS q(id, ticket_id) "
    "JOIN ticket_messages m ON m.id = q.id AND m.ticket_id = q.ticket_id "
    "JOIN tickets t ON t.id = m.ticket_id "
    "WHERE m.direction = 'outbound' ORDER BY m.id FOR UPDATE OF m"
)


async def lock_replies(
    conn: AsyncConnection, replies: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], Row[Any]]:
    """Replies of their tickets (not notes), locked in message id order, each with its channel
    and its ticket's owner and assignee: those found, by (message id, ticket id) as asked."""
    pairs = sorted(set(replies))
    found = await conn.execute(
        _LOCK_REPLIES, {"ids": [p[0] for p in pairs], "tickets": [p[1] for p in pairs]}
    )
    return {(row.id, row.ticket_id): row for row in found}


_SET_DELIVERY_STATES = text(
    "UPDATE ticket_messages m SET delivery_state = u.state, delivery_at = u.at, "
    "delivery_reason = coalesce(u.reason, m.delivery_reason), "
    "provider_message_id = coalesce(u.provider, m.provider_message_id) "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]), "
    "CAST(:ats AS timestamptz[]), CAST(:reasons AS text[]), CAST(:providers AS text[])) "
    "AS u(id, state, at, reason, provider) WHERE m.id = u.id"
)


async def set_delivery_states(
    conn: AsyncConnection,
    states: Sequence[tuple[uuid.UUID, str, datetime, str | None, str | None]],
) -> None:
    """Messages' delivery states in one statement: (id, state, at, reason, provider message
    id), one row per message; a None reason or provider id keeps the stored one."""
    if not states:
        return
    await conn.execute(
        _SET_DELIVERY_STATES,
        {
            "ids": [s[0] for s in states],
            "states": [s[1] for s in states],
            "ats": [s[2] for s in states],
            "reasons": [s[3] for s in states],
            "providers": [s[4] for s in states],
        },
    )


async def add_thread_keys(conn: AsyncConnection, keys: Sequence[tuple[str, uuid.UUID]]) -> None:
    """Makes each ticket findable by its key (a sent e-mail's Message-ID), once, in one
    statement."""
    pairs = sorted(set(keys))
    if not pairs:
        return
    await conn.execute(
        text(
            "INSERT INTO thread_keys (key, ticket_id) "
            "SELECT k, t FROM unnest(CAST(:keys AS text[]), CAST(:tickets AS uuid[])) AS u(k, t) "
            "ON CONFLICT (key, ticket_id) DO NOTHING"
        ),
        {"keys": [p[0] for p in pairs], "tickets": [p[1] for p in pairs]},
    )
