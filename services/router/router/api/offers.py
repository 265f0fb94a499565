"""Offers: an agent's pending offers, and answering one (only the agent it was made to)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Nudge, User
from router.api.schemas import DeclineIn, OfferOut, PendingOfferOut, TicketOut, TicketSummary
from router.handlers import offers

router = APIRouter(
    prefix="/v1", dependencies=[Depends(principal)], responses=AUTH_RESPONSES, tags=["offers"]
)


@router.get(
    "/agents/{agent_id}/offers",
    response_model=list[PendingOfferOut],
    summary="The agent's pending offers, each with its ticket's summary",
    description="The agent themself or a supervisor; another agent gets 403.",
)
async def agent_offers(
    agent_id: str, user: Principal = User, engine: AsyncEngine = Engine
) -> list[PendingOfferOut]:
    return [
        PendingOfferOut.model_validate(
            {**o._mapping, "summary": TicketSummary.of_columns(o, o.ticket_status)}
        )
        for o in await offers.pending_offers(engine, agent_id, user)
    ]


@router.post(
    "/offers/{offer_id}/accept",
    response_model=TicketOut,
    summary="Accept an offer: the ticket is the agent's (its owner if first)",
)
async def accept_offer(
    offer_id: uuid.UUID, user: Principal = User, engine: AsyncEngine = Engine
) -> TicketOut:
    return TicketOut.of(await offers.accept(engine, offer_id, user))


@router.post(
    "/offers/{offer_id}/decline",
    response_model=OfferOut,
    summary="Decline an offer with a reason: the ticket goes to the next agent",
)
async def decline_offer(
    offer_id: uuid.UUID,
    body: DeclineIn,
    user: Principal = User,
    engine: AsyncEngine = Engine,
    nudge: Callable[[], None] = Nudge,
) -> OfferOut:
    return OfferOut(**await offers.decline(engine, offer_id, user, body.reason, nudge))
