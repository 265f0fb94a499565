"""Queues: depth, oldest wait and available agents; a supervisor creates and changes them."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.auth import Principal
from ccshared.user_auth import AUTH_RESPONSES, principal
from router.api.deps import Engine, Nudge, Supervisor
from router.api.schemas import QueueIn, QueueOut
from router.handlers import queues

router = APIRouter(
    prefix="/v1", dependencies=[Depends(principal)], responses=AUTH_RESPONSES, tags=["queues"]
)


@router.get(
    "/queues",
    response_model=list[QueueOut],
    summary="Queues with their depth, oldest wait and available agents",
)
async def list_queues(engine: AsyncEngine = Engine) -> list[QueueOut]:
    return [QueueOut(**q) for q in await queues.list_queues(engine)]


@router.put(
    "/queues/{queue_id}", response_model=QueueOut, summary="Create or change a queue (supervisor)"
)
async def put_queue(
    queue_id: str,
    body: QueueIn,
    user: Principal = Supervisor,
    engine: AsyncEngine = Engine,
    nudge: Callable[[], None] = Nudge,
) -> QueueOut:
    await queues.put_queue(engine, queue_id, **body.model_dump(), nudge=nudge)
    return QueueOut(id=queue_id, **body.model_dump())
