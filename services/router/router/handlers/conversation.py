"""A ticket's conversation: paging through it, internal notes (with @mentions), and a canned
response filled in for the agent to edit. Replies are ticket actions (`handlers.tickets.reply`).
Whoever may read the ticket may read its conversation and add notes; anyone else gets the
ticket's 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.ids import uuid7
from ccshared.problems import NotFound
from router.db import agents as agents_db
from router.db import canned as canned_db
from router.db import messages as db
from router.db.tickets import SqlTicketsUnitOfWork
from router.domain import conversation, notifications
from router.handlers.tickets import (
    TicketsUnitOfWork,
    checked_text,
    decode_cursor,
    encode_cursor,
    field_problem,
    readable_ticket,
)


async def page_of_messages(
    engine: AsyncEngine, ticket_id: uuid.UUID, user: Principal, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Oldest first (time, then id: a stable order), a page and the next page's cursor (None:
    the last page)."""
    after = decode_cursor(cursor) if cursor else None
    async with engine.connect() as conn:
        await readable_ticket(SqlTicketsUnitOfWork.on(conn), ticket_id, user)
        found = await db.page_of_messages(conn, ticket_id, limit=limit + 1, after=after)
    page = found[:limit]
    more = len(found) > limit
    return page, encode_cursor(page[-1]["at"], page[-1]["id"]) if more else None


async def add_note(
    uow: TicketsUnitOfWork,
    ticket_id: uuid.UUID,
    user: Principal,
    text: str,
    rules: conversation.ConversationRules,
) -> conversation.Message:
    """An internal note by a user who may read the ticket: stored in the conversation, never
    delivered; each @mentioned agent gets a notification. A mention of no agent is a 422
    naming it, and nothing is stored."""
    text = checked_text(text, rules)
    mentioned = conversation.mentions(text)
    now = datetime.now(UTC)
    async with uow:
        ticket = await readable_ticket(uow, ticket_id, user)
        unknown = await uow.unknown_agents(mentioned)
        if unknown:
            names = ", ".join(f"@{a}" for a in unknown)
            raise field_problem("body.text", f"mentions no known agent: {names}")
        note = conversation.note_message(
            uuid7(),
            ticket.id,
            author=user.actor,
            channel=ticket.channel,
            text=text,
            at=now,
            mentioned=mentioned,
        )
        await uow.add_message(note)
        told = [a for a in mentioned if a != user.subject]  # no one is told of their own note
        await uow.notify(notifications.mention(told, ticket.id, user.actor, note.id, now))
    return note


async def render_canned(
    engine: AsyncEngine, ticket_id: uuid.UUID, canned_id: uuid.UUID, user: Principal
) -> dict[str, Any]:
    """A canned response with the ticket's customer name, number and the agent's name filled
    in, for the agent to edit and send. An agent may use those of the queues they serve."""
    async with engine.connect() as conn:
        ticket = await readable_ticket(SqlTicketsUnitOfWork.on(conn), ticket_id, user)
        canned = await canned_db.get_canned(conn, canned_id)
        if canned is None or (
            not user.is_supervisor
            and not await canned_db.agent_serves(conn, user.subject, canned["queue_id"])
        ):
            raise NotFound(f"No canned response {canned_id}.")
        agent = await agents_db.agent_view(conn, user.subject)
    values = {
        "customer_name": ticket.customer_name,
        "ticket_number": conversation.ticket_number(ticket.id),
        "agent_name": agent["name"] if agent else user.subject,
    }
    return {
        "canned_response_id": canned_id,
        "language": canned["language"],
        "text": conversation.render(canned["body"], values, canned["language"]),
    }
