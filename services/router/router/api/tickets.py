"""Tickets: reading them (an agent only those they may read) and their lifecycle actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import DetailMessages, Engine, Nudge, Parts, Rules, TicketsUow, User
from router.api.schemas import (
    ReasonIn,
    ReclassifyIn,
    ReplyIn,
    ResolveIn,
    TicketDetail,
    TicketOut,
    TicketPage,
    TicketSummary,
    TransferIn,
)
from router.bootstrap import RouterParts
from router.db.tickets import SqlTicketsUnitOfWork
from router.domain.conversation import ConversationRules
from router.handlers import tickets

router = APIRouter(
    prefix="/v1", dependencies=[Depends(principal)], responses=AUTH_RESPONSES, tags=["tickets"]
)
Uow = SqlTicketsUnitOfWork


@router.get(
    "/tickets",
    response_model=TicketPage,
    summary="Tickets, newest first, filtered; page with `cursor`",
    description="A supervisor sees every ticket; an agent only those they may read: assigned "
    "to or owned by them, or waiting in a queue they serve.",
)
async def list_tickets(
    user: Principal = User,
    engine: AsyncEngine = Engine,
    status: str | None = Query(default=None, pattern="^[a-z_]+(,[a-z_]+)*$"),
    queue_id: str | None = None,
    agent_id: str | None = Query(default=None, description="assignee or owner"),
    customer_id: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
) -> TicketPage:
    page, next_cursor = await tickets.page_of_tickets(
        engine,
        user,
        limit=limit,
        status=status,
        queue_id=queue_id,
        agent_id=agent_id,
        customer_id=customer_id,
        cursor=cursor,
    )
    return TicketPage(items=[TicketOut.of(t) for t in page], next_cursor=next_cursor)


@router.post(
    "/tickets/{ticket_id}/classification",
    response_model=TicketOut,
    summary="Correct a ticket's category and/or priority (a label the classifier learns from)",
    description="A supervisor may correct any ticket; an agent a ticket they may read (else "
    "404). Recorded in the history, published as `ticket.reclassified`, stored as a training "
    "label for `make train`; a waiting ticket is routed again and moves if its queue changes.",
)
async def reclassify(
    ticket_id: uuid.UUID,
    body: ReclassifyIn,
    user: Principal = User,
    uow: Uow = TicketsUow,
    parts: RouterParts = Parts,
    nudge: Callable[[], None] = Nudge,
) -> TicketOut:
    changed = await tickets.reclassify(
        uow,
        ticket_id,
        user,
        category=body.category,
        priority=body.priority,
        reason=body.reason,
        policy=await parts.policies.current(),
        nudge=nudge,
    )
    return TicketOut.of(changed)


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketDetail,
    summary="One ticket with its contacts, history and why it went to whom",
    description="A ticket an agent may not read (not assigned to or owned by them, not waiting "
    "in a queue they serve) is a 404, like one that does not exist.",
)
async def get_ticket_detail(
    ticket_id: uuid.UUID,
    user: Principal = User,
    engine: AsyncEngine = Engine,
    last: int = DetailMessages,
) -> TicketDetail:
    ticket, details = await tickets.ticket_detail(engine, ticket_id, user, last)
    return TicketDetail(**ticket.__dict__, **details, summary=TicketSummary.of(ticket))


@router.post(
    "/tickets/{ticket_id}/reply",
    response_model=TicketOut,
    summary="An agent answers the customer (the first answer is the first response)",
    description="The assignee or owner of the ticket, or a supervisor in an agent's name; "
    "another agent gets a 403 (404 if they may not read it) and nothing is stored. The text is "
    "stored in the conversation and published for delivery (message.outbound) with "
    "ticket.replied in one transaction. 413/422 name body.text; an unknown canned response is "
    "a 422; a messaging channel's closed reply window a 409 reply-window-closed.",
)
async def reply(
    ticket_id: uuid.UUID,
    body: ReplyIn,
    user: Principal = User,
    uow: Uow = TicketsUow,
    rules: ConversationRules = Rules,
) -> TicketOut:
    replied = await tickets.reply(
        uow,
        ticket_id,
        user,
        body.agent_id,
        body.channel,
        body.text,
        body.canned_response_id,
        rules,
    )
    return TicketOut.of(replied)


@router.post(
    "/tickets/{ticket_id}/pending",
    response_model=TicketOut,
    summary="Wait for the customer (pauses the resolution clock)",
)
async def set_pending(
    ticket_id: uuid.UUID, body: ReasonIn, user: Principal = User, uow: Uow = TicketsUow
) -> TicketOut:
    return TicketOut.of(await tickets.set_pending(uow, ticket_id, user, body.reason))


@router.post(
    "/tickets/{ticket_id}/resolve",
    response_model=TicketOut,
    summary="Resolve with a resolution code and whether it was solved on first contact",
)
async def resolve(
    ticket_id: uuid.UUID,
    body: ResolveIn,
    user: Principal = User,
    uow: Uow = TicketsUow,
    nudge: Callable[[], None] = Nudge,
) -> TicketOut:
    return TicketOut.of(
        await tickets.resolve(
            uow, ticket_id, user, body.resolution_code, body.first_contact_resolution, nudge
        )
    )


@router.post("/tickets/{ticket_id}/reopen", response_model=TicketOut)
async def reopen(
    ticket_id: uuid.UUID,
    body: ReasonIn,
    user: Principal = User,
    uow: Uow = TicketsUow,
    nudge: Callable[[], None] = Nudge,
) -> TicketOut:
    return TicketOut.of(await tickets.reopen(uow, ticket_id, user, body.reason, nudge))


@router.post(
    "/tickets/{ticket_id}/close",
    response_model=TicketOut,
    summary="Close (e.g. solved, spam, duplicate)",
)
async def close(
    ticket_id: uuid.UUID,
    body: ReasonIn,
    user: Principal = User,
    uow: Uow = TicketsUow,
    nudge: Callable[[], None] = Nudge,
) -> TicketOut:
    return TicketOut.of(await tickets.close(uow, ticket_id, user, body.reason, nudge))


@router.post(
    "/tickets/{ticket_id}/transfer",
    response_model=TicketOut,
    summary="Transfer to another queue (or agent); the owner stays the owner",
)
async def transfer(
    ticket_id: uuid.UUID,
    body: TransferIn,
    user: Principal = User,
    uow: Uow = TicketsUow,
    nudge: Callable[[], None] = Nudge,
) -> TicketOut:
    changed = await tickets.transfer(
        uow,
        ticket_id,
        user,
        body.reason,
        to_queue_id=body.to_queue_id,
        to_agent_id=body.to_agent_id,
        nudge=nudge,
    )
    return TicketOut.of(changed)
