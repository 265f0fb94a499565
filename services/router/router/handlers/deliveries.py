"""Delivery states of replies as intake reports them (`message.delivery_changed`): each stored
with its message, never backwards (a late `sent` after `delivered`, a redelivered event
change nothing); a reply that failed is told to the ticket's owner (its assignee if it has
none). A sent e-mail reply's Message-ID becomes one of the ticket's thread keys, so the
customer's answer to it joins the ticket."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events.payloads import MessageDeliveryChanged
from router.db import messages as db
from router.db.notifications import write_notifications
from router.domain import notifications
from router.domain.conversation import next_delivery_state
from router.domain.threading import email_key


async def apply_delivery(conn: AsyncConnection, changed: MessageDeliveryChanged) -> bool:
    """Whether the report changed the message's state. A message that is not a reply of this
    router's (another deployment's, a note) is left alone."""
    reply = await db.lock_reply(conn, changed.message_id, changed.ticket_id)
    if reply is None:
        return False
    if reply.channel == "email" and changed.provider_message_id:
        # The customer's answer names the reply's Message-ID (In-Reply-To): it threads by it.
        await db.add_thread_key(conn, changed.ticket_id, email_key(changed.provider_message_id))
    state = next_delivery_state(reply.delivery_state, changed.state)
    if state is None:
        return False
    await db.set_delivery_state(
        conn,
        changed.message_id,
        state,
        reason=changed.reason,
        provider_message_id=changed.provider_message_id,
        at=changed.at,
    )
    if state == "failed":
        told = reply.owner_agent_id or reply.assignee_agent_id
        await write_notifications(
            conn,
            notifications.delivery_failed(
                told, changed.ticket_id, changed.message_id, changed.reason, changed.at
            ),
        )
    return True
