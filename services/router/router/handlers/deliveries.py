"""Delivery states of replies as intake reports them (`message.delivery_changed`): each stored
with its message, never backwards (a late `sent` after `delivered`, a redelivered event
change nothing); a reply that failed is told to the ticket's owner (its assignee if it has
none). A sent e-mail reply's Message-ID becomes one of the ticket's thread keys, so the
customer's answer to it joins the ticket."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import MessageDeliveryChanged
from ccshared.logging import correlation_id
from router.db import messages as db
from router.db.notifications import write_notifications
from router.domain import notifications
from router.domain.conversation import next_delivery_state
from router.domain.notifications import Notification
from router.domain.threading import email_key


async def apply_delivery(conn: AsyncConnection, changed: MessageDeliveryChanged) -> bool:
    """Whether the report changed the message's state. A message that is not a reply of this
    router's (another deployment's, a note) is left alone."""
    return (await apply_deliveries(conn, [changed]))[0]


async def apply_deliveries(
    conn: AsyncConnection,
    reports: Sequence[MessageDeliveryChanged],
    correlation_ids: Sequence[str | None] | None = None,
) -> list[bool]:
    """`apply_delivery` for a fetch's reports, in their order, with a statement each for the
    locks, the states, the thread keys and the notifications (not three per report): whether
    each report changed its message's state. `correlation_ids`: each report's event's, which
    the notification of a failure carries (its trace, its logs); failures are rare, so each
    is written on its own under it."""
    replies = await db.lock_replies(conn, [(r.message_id, r.ticket_id) for r in reports])
    current = {key[0]: reply.delivery_state for key, reply in replies.items()}
    stored: dict[uuid.UUID, tuple[uuid.UUID, str, datetime, str | None, str | None]] = {}
    keys: list[tuple[str, uuid.UUID]] = []
    told: list[tuple[str | None, list[Notification]]] = []
    changed: list[bool] = []
    for n, report in enumerate(reports):
        # A report names the reply's ticket too: one naming another ticket is left alone.
        reply = replies.get((report.message_id, report.ticket_id))
        if reply is None:
            changed.append(False)
            continue
        if reply.channel == "email" and report.provider_message_id:
            # The customer's answer names the reply's Message-ID (In-Reply-To): it threads by it.
            keys.append((email_key(report.provider_message_id), report.ticket_id))
        state = next_delivery_state(current[report.message_id], report.state)
        changed.append(state is not None)
        if state is None:
            continue
        current[report.message_id] = state
        # As if stored one after the other: a report without a reason or a provider id keeps
        # what an earlier one (or the row) has.
        earlier = stored.get(report.message_id)
        stored[report.message_id] = (
            report.message_id,
            state,
            report.at,
            report.reason if report.reason is not None else (earlier[3] if earlier else None),
            report.provider_message_id
            if report.provider_message_id is not None
            else (earlier[4] if earlier else None),
        )
        if state == "failed":
            owner = reply.owner_agent_id or reply.assignee_agent_id
            told.append(
                (
                    correlation_ids[n] if correlation_ids else correlation_id.get(),
                    notifications.delivery_failed(
                        owner, report.ticket_id, report.message_id, report.reason, report.at
                    ),
                )
            )
    await db.add_thread_keys(conn, keys)
    await db.set_delivery_states(conn, list(stored.values()))
    for cid, failed in told:
        token = correlation_id.set(cid)
        try:
            await write_notifications(conn, failed)
        finally:
            correlation_id.reset(token)
    return changed
