"""Answering offers: only the agent an offer was made to may accept or decline it; an
accepted offer makes the agent the ticket's assignee (and owner, if it has none)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.problems import Conflict, NotFound
from ccshared.user_auth import Forbidden, require_self_or_supervisor
from router.db import offers as db
from router.db.tickets import SqlTicketsUnitOfWork, Ticket
from router.domain import tickets
from router.handlers.tickets import decided, write_in_contacts_trace
from router.metrics import ACCEPTED, DECLINED


async def pending_offers(engine: AsyncEngine, agent_id: str, user: Principal) -> list[Row[Any]]:
    """The agent's pending offers with their tickets' summary columns (their tickets are
    assigned to the agent, so the agent may read them)."""
    require_self_or_supervisor(user, agent_id)
    async with engine.connect() as conn:
        return await db.pending_offers_of(conn, agent_id)


async def _pending_offer(
    uow: SqlTicketsUnitOfWork, offer_id: uuid.UUID, user: Principal
) -> tuple[db.HeldOffer, Ticket]:
    """The offer, pending and made to this user, and its ticket: both locked."""
    found = await db.lock_offer_and_ticket(uow.conn, offer_id)
    if found is None:
        raise NotFound(f"No offer {offer_id}.")
    offer, ticket = found
    if user.subject != offer.agent_id:  # supervisors too: only the agent answers an offer
        if not user.is_supervisor:  # another agent's offer is none of this agent's business
            raise NotFound(f"No offer {offer_id}.")
        raise Forbidden(f"Offer {offer_id} was made to {offer.agent_id}, not {user.subject}.")
    if offer.status != "pending":
        raise Conflict(
            f"Offer {offer_id} is {offer.status}, no longer pending.",
            slug="offer-not-pending",
            extra={"offer_status": offer.status},
        )
    return offer, ticket


async def accept(engine: AsyncEngine, offer_id: uuid.UUID, user: Principal) -> Ticket:
    async with SqlTicketsUnitOfWork(engine) as uow:
        offer, ticket = await _pending_offer(uow, offer_id, user)
        stale = ticket.status != "assigned" or ticket.assignee_agent_id != offer.agent_id
        if stale:
            # The ticket moved on while this accept waited for it (its change left this offer,
            # which the accept held, to it): the offer is void, not a claim on the ticket.
            await db.rescind_offer(uow.conn, offer_id, "the ticket moved on")
        else:
            await db.mark_accepted(uow.conn, offer_id)
            change = decided(
                ticket, lambda: tickets.accept(ticket, offer.agent_id, datetime.now(UTC)), "accept"
            )
            await write_in_contacts_trace(uow, ticket, change, "accept")
            tickets.apply(ticket, change)
    if stale:
        raise Conflict(
            f"Offer {offer_id} no longer holds ticket {ticket.id} ({ticket.status}).",
            slug="offer-not-pending",
            extra={"offer_status": "rescinded", "ticket_status": ticket.status},
        )
    ACCEPTED.inc()
    return ticket


async def decline(
    engine: AsyncEngine,
    offer_id: uuid.UUID,
    user: Principal,
    reason: str,
    nudge: Callable[[], None],
) -> dict[str, Any]:
    """The offer, declined; its ticket goes back to the queue, for the next agent."""
    async with SqlTicketsUnitOfWork(engine) as uow:
        offer, ticket = await _pending_offer(uow, offer_id, user)
        declined = await db.mark_declined(uow.conn, offer_id, reason)
        change = decided(
            ticket,
            lambda: tickets.decline(ticket, offer.agent_id, reason, datetime.now(UTC)),
            "queue",
        )
        await write_in_contacts_trace(uow, ticket, change, "decline")
    DECLINED.inc()
    nudge()
    return declined
