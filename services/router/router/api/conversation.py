"""A ticket's conversation: its messages (contacts, replies, notes), notes with @mentions, and
canned responses filled in for it. Whoever may read the ticket (an agent: assigned, owner, or
waiting in a queue they serve; every supervisor); anyone else gets the ticket's 404."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Rules, TicketsUow, User
from router.api.schemas import MessageOut, MessagePage, NoteIn, RenderedCannedResponse
from router.db.tickets import SqlTicketsUnitOfWork
from router.domain.conversation import ConversationRules
from router.handlers import conversation

router = APIRouter(
    prefix="/v1", dependencies=[Depends(principal)], responses=AUTH_RESPONSES, tags=["conversation"]
)


@router.get(
    "/tickets/{ticket_id}/messages",
    response_model=MessagePage,
    summary="The ticket's conversation, oldest first; page with `cursor`",
    description="Every contact of the customer, reply (with its delivery state) and internal "
    "note, ordered by time then id. Who may read the ticket; anyone else a 404.",
)
async def list_messages(
    ticket_id: uuid.UUID,
    user: Principal = User,
    engine: AsyncEngine = Engine,
    limit: int = Query(default=50, ge=1, le=500),
    cursor: str | None = None,
) -> MessagePage:
    page, next_cursor = await conversation.page_of_messages(
        engine, ticket_id, user, limit=limit, cursor=cursor
    )
    return MessagePage(items=[MessageOut(**m) for m in page], next_cursor=next_cursor)


@router.post(
    "/tickets/{ticket_id}/notes",
    response_model=MessageOut,
    status_code=201,
    summary="An internal note (never sent to the customer); @agent-id notifies that agent",
    description="Whoever may read the ticket. A mention of no agent is a 422 naming body.text; "
    "413/422 for an oversized or blank text.",
)
async def add_note(
    ticket_id: uuid.UUID,
    body: NoteIn,
    user: Principal = User,
    uow: SqlTicketsUnitOfWork = TicketsUow,
    rules: ConversationRules = Rules,
) -> MessageOut:
    note = await conversation.add_note(uow, ticket_id, user, body.text, rules)
    return MessageOut(
        id=note.id,
        direction="note",
        kind="note",
        author=note.author,
        channel=note.channel,
        at=note.created_at,
        text=note.text,
        mentions=list(note.mentions),
    )


@router.post(
    "/tickets/{ticket_id}/canned-responses/{canned_id}/render",
    response_model=RenderedCannedResponse,
    summary="A canned response filled in for this ticket, for the agent to edit and send",
    description="Whoever may read the ticket; an agent only a response of a queue they serve "
    "(another is a 404).",
)
async def render_canned(
    ticket_id: uuid.UUID, canned_id: uuid.UUID, user: Principal = User, engine: AsyncEngine = Engine
) -> RenderedCannedResponse:
    rendered = await conversation.render_canned(engine, ticket_id, canned_id, user)
    return RenderedCannedResponse(**rendered)
